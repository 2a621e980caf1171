//! End to end: a message to a user with no device online reaches (a fake) APNs with the
//! right badge through chatd's in-process queue and worker; with a device online, no push.

use std::path::PathBuf;
use std::time::Duration;

use chat_test_push_fakes::FakeApns;
use chat_testkit::{token, TestServer};
use serde_json::json;

use crate::helpers::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../services/push/tests/fixtures")
        .join(name)
}

#[tokio::test]
async fn offline_users_get_a_push_with_their_unread_badge_online_users_do_not() {
    let public = std::fs::read_to_string(fixture("apns-test-key.pub.pem")).unwrap();
    let apns = FakeApns::start(&public, "TEAM", "KEYID", "com.example.chat").await;
    let server = TestServer::start_with(|a| {
        let p = &mut a.push.providers;
        p.apns_key_file = Some(fixture("apns-test-key.p8"));
        p.apns_key_id = Some("KEYID".into());
        p.apns_team_id = Some("TEAM".into());
        p.apns_topic = Some("com.example.chat".into());
        p.apns_endpoint = apns.url.clone();
    })
    .await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let (status, _) = server
        .http()
        .post(
            "/v1/devices",
            Some(&token("bob", None)),
            json!({"device_id": "iphone", "platform": "apns", "token": "bob-iphone"}),
        )
        .await;
    assert_eq!(status, 204);

    let mut alice = server.connect("alice", "phone").await;
    alice.send_message(&chat, "m1", "one").await;
    alice.send_message(&chat, "m2", "two").await;
    let mut pushes = Vec::new();
    for _ in 0..100 {
        pushes = apns.accepted();
        if pushes.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pushes.len(), 2, "one push per message while bob is offline");
    assert!(apns.rejected().is_empty(), "{:?}", apns.rejected());
    assert_eq!(pushes[0].device_token, "bob-iphone");
    assert_eq!(pushes[0].collapse_id.as_deref(), Some(chat.as_str()));
    let badges: Vec<u64> = pushes
        .iter()
        .map(|p| p.payload["aps"]["badge"].as_u64().unwrap())
        .collect();
    assert_eq!(
        *badges.last().unwrap(),
        2,
        "badge = total unread: {badges:?}"
    );

    // Bob comes online: no more pushes.
    let mut bob = server.connect("bob", "phone").await;
    alice.send_message(&chat, "m3", "three").await;
    bob.wait_for(|f| f["client_msg_id"] == "m3").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(apns.accepted().len(), 2);
    assert_alive(&mut bob).await;
}
