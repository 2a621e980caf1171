//! The REST API: every route, its status codes and its JSON error bodies.

use chat_testkit::{token, TestServer};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn direct_chats_are_unique_per_pair() {
    let server = TestServer::start().await;
    let http = server.http();
    let (status, created) = http
        .post(
            "/v1/chats",
            Some(&token("alice", None)),
            json!({"kind": "direct", "members": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["kind"], "direct");
    assert!(created["title"].is_null());
    assert_eq!(created["head_seq"], 0);
    assert_eq!(created["members"].as_array().unwrap().len(), 2);
    let (status, again) = http
        .post(
            "/v1/chats",
            Some(&token("bob", None)),
            json!({"kind": "direct", "members": ["alice"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["chat_id"], created["chat_id"]);
    let (status, body) = http
        .post(
            "/v1/chats",
            Some(&token("alice", None)),
            json!({"kind": "direct", "members": ["alice"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn groups_make_the_creator_admin() {
    let server = TestServer::start().await;
    let (status, chat) = server
        .http()
        .post(
            "/v1/chats",
            Some(&token("alice", None)),
            json!({"kind": "group", "title": "Team", "members": ["bob", "bob", "carol"]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(chat["title"], "Team");
    let members = chat["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "duplicates collapse: {chat}");
    assert_eq!(members[0], json!({"user_id": "alice", "role": "admin"}));
    assert!(chat["created_at"].as_i64().unwrap() > 1_600_000_000_000);
}

#[tokio::test]
async fn messages_over_rest_match_websocket_semantics() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut bob = server.connect("bob", "phone").await;
    let http = server.http();
    let alice = token("alice", None);
    let path = format!("/v1/chats/{chat}/messages");
    let (status, sent) = http
        .post(
            &path,
            Some(&alice),
            json!({"client_msg_id": "r1", "body": "via rest"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(sent["seq"], 1);
    let live = bob.wait_for(is_msg_of(&chat)).await;
    assert_eq!(live["msg_id"], sent["msg_id"]);
    for i in 2..=6 {
        http.post(
            &path,
            Some(&alice),
            json!({"client_msg_id": format!("r{i}"), "body": "x"}),
        )
        .await;
    }
    // Seqs are at most 2^63 - 1: above, a clear 400 (it once wrapped to a negative number
    // and returned seqs 1, 2, 3), over REST and WebSocket alike.
    for query in [
        "after_seq=18446744073709551615",
        "before_seq=9223372036854775808",
    ] {
        let (status, body) = http.get(&format!("{path}?{query}"), Some(&alice)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{query}"
        );
    }
    let (status, _) = http
        .get(
            &format!("{path}?after_seq=9223372036854775807"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, 200, "the largest seq is fine");
    let mut ws = server.connect("alice", "laptop").await;
    let refused = ws
        .request(json!({"type": "recv", "chat_id": chat, "seq": 9223372036854775808u64}))
        .await;
    assert_eq!(refused["code"], "bad_request", "{refused}");
    let (_, page) = http
        .get(&format!("{path}?after_seq=2&limit=3"), Some(&alice))
        .await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    let (_, page) = http
        .get(&format!("{path}?before_seq=3"), Some(&alice))
        .await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    let (status, body) = http.get(&format!("{path}?limit=abc"), Some(&alice)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (_, list) = http.get("/v1/chats", Some(&token("bob", None))).await;
    let entry = &list["chats"][0];
    assert_eq!(entry["chat_id"], chat);
    assert_eq!(entry["head_seq"], 6);
    assert_eq!(entry["unread"], 6);
    assert_eq!(entry["read_seq"], 0);
    assert_eq!(entry["last_message"]["seq"], 6);
}

#[tokio::test]
async fn rest_errors_are_json_with_matching_status() {
    let server = TestServer::start().await;
    let http = server.http();
    let (status, body) = http.get("/v1/chats", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = http.get("/v1/chats", Some("not-a-token")).await;
    assert_eq!(status, 401);
    let alice = token("alice", None);
    let (status, body) = http
        .post_raw("/v1/chats", Some(&alice), "{oops".into())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = http
        .post("/v1/chats", Some(&alice), json!({"kind": "channel"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let chat = direct_chat(&server, "alice", "bob").await;
    let huge = "z".repeat(200 * 1024);
    let (status, body) = http
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&alice),
            json!({"client_msg_id": "h", "body": huge}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let big_body = "z".repeat(17 * 1024);
    let (status, body) = http
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&alice),
            json!({"client_msg_id": "h", "body": big_body}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let (_, page) = http
        .get(&format!("/v1/chats/{chat}/messages"), Some(&alice))
        .await;
    assert_eq!(page["messages"], json!([]));
}

#[tokio::test]
async fn devices_register_and_unregister() {
    let server = TestServer::start().await;
    let http = server.http();
    let alice = token("alice", None);
    for (platform, device_token, expected) in [
        ("apns", "abc", 204),
        ("pager", "abc", 400),
        ("fcm", "", 400),
    ] {
        let body = json!({"device_id": "phone", "platform": platform, "token": device_token});
        let (status, _) = http.post("/v1/devices", Some(&alice), body).await;
        assert_eq!(status, expected, "{platform} {device_token:?}");
    }
    let (status, _) = http
        .delete("/v1/devices/phone", Some(&token("bob", None)))
        .await;
    assert_eq!(status, 404, "bob cannot remove alice's device");
    let (status, _) = http.delete("/v1/devices/phone", Some(&alice)).await;
    assert_eq!(status, 204);
    let (status, _) = http.delete("/v1/devices/phone", Some(&alice)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn health_readiness_and_metrics_on_their_own_listener() {
    let metrics_addr: std::net::SocketAddr = ([127, 0, 0, 1], chat_test_redis::free_port()).into();
    let server =
        TestServer::start_with(|args| args.gateway.metrics_listen = Some(metrics_addr)).await;
    let http = server.http();
    assert_eq!(
        http.get_text("/metrics").await.0,
        404,
        "not on the public port"
    );
    assert_eq!(http.get_text("/healthz").await.0, 200);
    assert_eq!(http.get_text("/readyz").await, (200, "ready".to_string()));
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    alice.send_message(&chat, "m", "x").await;
    let (status, metrics) = chat_testkit::Http::new(metrics_addr)
        .get_text("/metrics")
        .await;
    assert_eq!(status, 200);
    for name in [
        "chat_messages_stored_total",
        "chat_ws_frames_in_total",
        "chat_http_requests_total",
        "chat_store_commit_seconds",
        "chat_send_queue_seconds_count",
        "chat_send_fanout_seconds_count",
        // The process's own figures, read at each scrape.
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(
        metrics.contains("route=\"/v1/chats\""),
        "routes are labelled by template"
    );
}
