//! Per-connection and per-user limits: send rate, devices per user, slow consumers.

use std::time::{Duration, Instant};

use chat_testkit::{token, TestServer};
use serde_json::{json, Map};

use crate::helpers::*;

#[tokio::test]
async fn sends_over_the_rate_are_slowed_not_refused() {
    let server = TestServer::start_with(|a| {
        a.gateway.send_rate = 2;
        a.gateway.send_burst = 2;
    })
    .await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let started = Instant::now();
    let replies = alice.send_pipelined(&chat, "m", 5, "x").await;
    for reply in &replies {
        assert_eq!(reply["type"], "sent", "{reply}");
    }
    // Two in the burst, then one every 500 ms: the last three waited for the bucket.
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_alive(&mut alice).await;
}

#[tokio::test]
async fn a_request_that_would_wait_too_long_is_rate_limited_and_that_is_no_violation() {
    let server = TestServer::start_with(|a| {
        a.gateway.send_rate = 1;
        a.gateway.send_burst = 1;
        a.gateway.max_violations = 3;
        a.gateway.limits.max_rate_delay = Duration::from_millis(100);
    })
    .await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    alice.send_message(&chat, "a", "1").await;
    // Far more refusals than the violation limit: rate_limited is a normal answer.
    for i in 0..10 {
        let limited = alice
            .request(json!({"type": "send", "chat_id": chat, "client_msg_id": format!("b{i}"), "body": "2"}))
            .await;
        assert_eq!(error_code(&limited), "rate_limited");
        let retry = limited["retry_after_ms"].as_u64().unwrap();
        assert!(retry > 0 && retry <= 1000, "{retry}");
    }
    assert_alive(&mut alice).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice.send_message(&chat, "b0", "2").await;
}

#[tokio::test]
async fn typing_over_its_rate_is_dropped_at_once() {
    let server =
        TestServer::start_with(|a| a.gateway.limits.limit_typing = "1/m,1".parse().unwrap()).await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let first = alice
        .request(json!({"type": "typing", "chat_id": chat}))
        .await;
    assert_eq!(first["type"], "ok", "{first}");
    let second = alice
        .request(json!({"type": "typing", "chat_id": chat}))
        .await;
    assert_eq!(error_code(&second), "rate_limited");
}

#[tokio::test]
async fn devices_per_user_are_limited() {
    let server = TestServer::start_with(|a| a.gateway.max_devices_per_user = 2).await;
    let _one = server.connect("alice", "one").await;
    let _two = server.connect("alice", "two").await;
    // The same device again is fine (a reconnect overlapping the old connection).
    let _two_again = server.connect("alice", "two").await;
    let refused = server
        .try_connect_url(&format!(
            "/v1/ws?token={}&device=three",
            token("alice", None)
        ))
        .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        _ => panic!("a third device was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_and_recovers_everything_by_sync() {
    let server = TestServer::start_with(|a| {
        a.gateway.outbound_queue = 8;
        a.gateway.send_rate = 100_000;
        a.gateway.send_burst = 100_000;
    })
    .await;
    let chat = direct_chat(&server, "alice", "bob").await;
    // Bob connects and then never reads: his socket buffers fill, then his queue.
    let mut bob = server.connect("bob", "phone").await;
    let mut alice = server.connect("alice", "phone").await;
    let body = "s".repeat(16 * 1024);
    const COUNT: usize = 600;
    for reply in alice.send_pipelined(&chat, "m", COUNT, &body).await {
        assert_eq!(reply["type"], "sent", "{reply}");
    }
    // The sender was never held back by the slow reader.
    assert_alive(&mut alice).await;
    // Bob's connection was closed (1013) once the queue overflowed.
    assert_eq!(bob.wait_closed().await, Some(1013));
    let mut bob = server.connect("bob", "phone").await;
    let (messages, _) = bob.sync_all(Map::new(), 1000).await;
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=COUNT as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_sequencer_answers_unavailable_and_a_retry_succeeds() {
    let server = TestServer::start_with(|a| {
        a.chat.sequencer_queue = 1;
        a.gateway.send_rate = 100_000;
        a.gateway.send_burst = 100_000;
    })
    .await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    const COUNT: usize = 200;
    let replies = alice.send_pipelined(&chat, "m", COUNT, "x").await;
    let mut refused = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        match reply["type"].as_str() {
            Some("sent") => {}
            _ => {
                assert_eq!(error_code(reply), "unavailable");
                refused.push(i);
            }
        }
    }
    assert!(
        !refused.is_empty(),
        "a queue of one must overflow under 200 pipelined sends"
    );
    // Retrying the refused sends, one at a time, stores each exactly once.
    for i in &refused {
        alice.send_message(&chat, &format!("m{i}"), "x").await;
    }
    let (_, page) = server
        .http()
        .get(
            &format!("/v1/chats/{chat}/messages?after_seq=0&limit=200"),
            Some(&token("alice", None)),
        )
        .await;
    let mut ids: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["client_msg_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), COUNT);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), COUNT, "no message stored twice");
}
