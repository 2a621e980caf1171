//! Presence: online from the first device to the last, last seen, live updates.

use chat_testkit::{token, TestServer};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn presence_changes_per_user_not_per_device() {
    let server = TestServer::start().await;
    direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let first = alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    assert_eq!(first["users"][0]["online"], false);
    assert!(
        first["users"][0]["last_seen"].is_null(),
        "never seen: {first}"
    );

    let bob_phone = server.connect("bob", "phone").await;
    let online = alice.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(online["users"][0]["user_id"], "bob");
    assert_eq!(online["users"][0]["online"], true);
    assert!(online.get("re").is_none());

    // A second device is no change; closing one of two is none either.
    let bob_laptop = server.connect("bob", "laptop").await;
    bob_phone.close().await;
    assert_silent(&mut alice, |f| f["type"] == "presence").await;

    bob_laptop.close().await;
    let offline = alice.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(offline["users"][0]["online"], false);
    let last_seen = offline["users"][0]["last_seen"].as_i64().unwrap();
    assert!(last_seen > 1_600_000_000_000);

    let again = alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    assert_eq!(again["users"][0]["last_seen"], last_seen);
}

#[tokio::test]
async fn too_many_users_in_one_subscription_is_too_large() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice", "phone").await;
    let users: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let reply = alice
        .request(json!({"type": "presence_sub", "user_ids": users}))
        .await;
    assert_eq!(error_code(&reply), "too_large");
    assert_alive(&mut alice).await;
}

#[tokio::test]
async fn a_watch_ends_when_the_watched_user_leaves_the_last_shared_chat() {
    let server = TestServer::start().await;
    let group = group_chat(&server, "eve", &["frank", "gina"]).await;
    let mut eve = server.connect("eve", "phone").await;
    let watched = eve
        .request(json!({"type": "presence_sub", "user_ids": ["frank", "gina"]}))
        .await;
    assert!(watched["users"][0]["error"].is_null(), "{watched}");

    // frank leaves the only chat he shares with eve: from now on his presence is hers
    // no more, over the socket as over REST.
    let (status, _) = server
        .http()
        .delete(
            &format!("/v1/chats/{group}/members/frank"),
            Some(&token("frank", None)),
        )
        .await;
    assert_eq!(status, 204);
    let _frank = server.connect("frank", "phone").await;
    // gina, still in the group, comes online after him: her frame arrives, his never did.
    let _gina = server.connect("gina", "phone").await;
    let seen = eve.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(
        seen["users"][0]["user_id"], "gina",
        "frank's frame came first: {seen}"
    );
    assert_silent(&mut eve, |f| f["type"] == "presence").await;
    let again = eve
        .request(json!({"type": "presence_sub", "user_ids": ["frank"]}))
        .await;
    assert_eq!(again["users"][0]["error"], "forbidden");
}

#[tokio::test]
async fn a_user_who_hides_their_last_seen_shows_it_to_nobody() {
    let server = TestServer::start().await;
    direct_chat(&server, "alice", "bob").await;
    let http = server.http();
    let (alice, bob) = (token("alice", None), token("bob", None));
    let (_, settings) = http.get("/v1/me/privacy", Some(&bob)).await;
    assert_eq!(settings, json!({"last_seen": "contacts"}));
    let (status, _) = http
        .put_json("/v1/me/privacy", Some(&bob), json!({"last_seen": "nobody"}))
        .await;
    assert_eq!(status, 204);
    let (status, _) = http
        .put_json(
            "/v1/me/privacy",
            Some(&bob),
            json!({"last_seen": "everyone"}),
        )
        .await;
    assert_eq!(status, 400);

    let mut alice_ws = server.connect("alice", "phone").await;
    alice_ws
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    // bob comes and goes: alice sees the online state change, never a time.
    let bob_ws = server.connect("bob", "phone").await;
    let online = alice_ws.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(online["users"][0]["online"], true);
    assert!(online["users"][0]["last_seen"].is_null(), "{online}");
    bob_ws.close().await;
    let offline = alice_ws.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(offline["users"][0]["online"], false);
    assert!(offline["users"][0]["last_seen"].is_null(), "{offline}");
    let (_, answer) = http.get("/v1/presence?user_ids=bob", Some(&alice)).await;
    assert!(answer["users"][0]["last_seen"].is_null(), "{answer}");
    assert!(
        answer["users"][0]["error"].is_null(),
        "still a contact: {answer}"
    );
    // bob sees his own; and once he shows it again, so does alice.
    let (_, own) = http.get("/v1/presence?user_ids=bob", Some(&bob)).await;
    assert!(own["users"][0]["last_seen"].as_i64().is_some(), "{own}");
    http.put_json(
        "/v1/me/privacy",
        Some(&bob),
        json!({"last_seen": "contacts"}),
    )
    .await;
    let (_, answer) = http.get("/v1/presence?user_ids=bob", Some(&alice)).await;
    assert!(
        answer["users"][0]["last_seen"].as_i64().is_some(),
        "{answer}"
    );
}
