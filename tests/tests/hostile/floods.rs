//! Floods of cheap requests: REST sends past the user's budget, and `recv` acks that once
//! slowed everyone else's sends. Each is held to the user's rate; nothing accepted is lost.

use std::time::{Duration, Instant};

use chat_testkit::{token, TestServer};
use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::{all_messages, assert_alive, group};

/// Sends `count` messages over REST, `concurrency` at a time; returns (status,
/// client_msg_id, Retry-After) of each.
pub async fn rest_send_flood(
    base: &str,
    user: &str,
    chat: &str,
    count: usize,
    concurrency: usize,
) -> Vec<(u16, String, Option<String>)> {
    let client = reqwest::Client::new();
    let token = token(user, None);
    futures_util::stream::iter(0..count)
        .map(|i| {
            let (client, token) = (client.clone(), token.clone());
            let url = format!("{base}/v1/chats/{chat}/messages");
            async move {
                let cmid = format!("flood-{i}");
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"client_msg_id": cmid, "body": "x"}))
                    .send()
                    .await
                    .expect("request");
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), cmid, retry_after)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Checks the outcome of a flood: some 201s, the rest 429 with Retry-After, and every
/// 201 message in the chat's history exactly once.
pub fn check_flood(outcomes: &[(u16, String, Option<String>)], stored: &[serde_json::Value]) {
    let created: Vec<&String> = outcomes
        .iter()
        .filter(|(status, ..)| *status == 201)
        .map(|(_, cmid, _)| cmid)
        .collect();
    let limited = outcomes.iter().filter(|(status, ..)| *status == 429);
    assert!(!created.is_empty());
    assert!(
        limited.clone().count() > 0,
        "a flood past the budget got no 429"
    );
    for (status, _, retry_after) in outcomes {
        assert!(matches!(status, 201 | 429), "unexpected status {status}");
        if *status == 429 {
            let secs: u64 = retry_after
                .as_deref()
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!(secs >= 1);
        }
    }
    let mut stored_ids: Vec<&str> = stored
        .iter()
        .map(|m| m["client_msg_id"].as_str().unwrap())
        .collect();
    stored_ids.sort_unstable();
    let mut created_ids: Vec<&str> = created.iter().map(|s| s.as_str()).collect();
    created_ids.sort_unstable();
    assert_eq!(
        stored_ids, created_ids,
        "every 201, and only those, is stored once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_send_flood_is_answered_429_past_the_budget_and_nothing_accepted_is_lost() {
    let server = TestServer::start().await;
    let chat = group(&server.http(), "alice", &["bob".into()]).await;
    let base = format!("http://{}", server.addr);
    let outcomes = rest_send_flood(&base, "alice", &chat, 2000, 64).await;
    let stored = all_messages(&server.http(), "alice", &chat).await;
    check_flood(&outcomes, &stored);
    // The default budget is a burst of 500 and 50/s after it.
    let created = outcomes.iter().filter(|(s, ..)| *s == 201).count();
    assert!((500..1000).contains(&created), "{created} accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recv_flood_is_paced_to_the_users_rate() {
    let server =
        TestServer::start_with(|a| a.gateway.limits.limit_receipts = "50/s,100".parse().unwrap())
            .await;
    let chat = group(&server.http(), "bob", &["alice".into()]).await;
    let mut bob = server.connect("bob", "phone").await;
    bob.send_message(&chat, "m", "hi").await;
    let mut alice = server.connect("alice", "phone").await;
    let flooded = Instant::now();
    for i in 0..250 {
        alice
            .send_json(json!({"type": "recv", "id": format!("a{i}"), "chat_id": chat, "seq": 1}))
            .await;
    }
    // Within the first second, at most the burst and a second's worth are answered.
    let second_later = tokio::time::Instant::from(flooded) + Duration::from_secs(1);
    let mut answered = 0;
    while let Ok(Some(_)) = tokio::time::timeout_at(
        second_later,
        alice.try_wait_for(Duration::from_secs(1), |f| f["type"] == "ok"),
    )
    .await
    {
        answered += 1;
    }
    assert!(
        answered <= 100 + 50 + 10,
        "{answered} acks answered in a second"
    );
    // None is refused or lost: the rest are answered as the budget refills.
    answered += alice
        .collect_for(Duration::from_secs(1), |f| f["type"] == "ok")
        .await
        .len();
    assert_eq!(answered, 250);
    // Meanwhile bob's sends went through at once (the flood cost only alice's budget).
    bob.send_message(&chat, "m2", "still here").await;
    assert_alive(&mut alice).await;
}
