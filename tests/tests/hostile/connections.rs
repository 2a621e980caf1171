//! Connection limits: one connection per device (a new one replaces the old, which is told
//! so), devices per user, connections per source address and per server, connects per user.

use std::collections::HashSet;
use std::time::Duration;

use chat_testkit::{token, TestServer, WsClient};
use serde_json::json;
use tokio::net::TcpStream;

use crate::helpers::{all_messages, assert_alive, group, refused};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_again_replaces_its_old_connection() {
    let server =
        TestServer::start_with(|a| a.gateway.limits = a.gateway.limits.clone().without_rates())
            .await;
    let chat = group(&server.http(), "bob", &["alice".into()]).await;
    let mut sockets = Vec::new();
    for _ in 0..50 {
        sockets.push(server.connect("alice", "phone").await);
    }
    let mut latest = sockets.pop().unwrap();
    for old in &mut sockets {
        assert_eq!(old.wait_closed().await, Some(4001), "replaced, and told so");
    }
    // One message reaches alice's phone once, not fifty times.
    let mut bob = server.connect("bob", "phone").await;
    bob.send_message(&chat, "hello", "hi").await;
    let got = latest.wait_for(|f| f["type"] == "msg").await;
    assert_eq!(got["client_msg_id"], "hello");
    assert_alive(&mut latest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_connection_first_gets_the_replies_it_owes() {
    let server =
        TestServer::start_with(|a| a.gateway.limits = a.gateway.limits.clone().without_rates())
            .await;
    let chat = group(&server.http(), "alice", &["bob".into()]).await;
    let mut old = server.connect("alice", "phone").await;
    let ids: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        old.send_json(json!({"type": "send", "id": id, "chat_id": chat, "client_msg_id": format!("m{i}"), "body": "x"}))
            .await;
    }
    // Replace it while its requests are being answered.
    let first = old.reply_to("r0").await;
    let _new = server.connect("alice", "phone").await;
    assert_eq!(old.wait_closed().await, Some(4001));
    let later = ids[1..]
        .iter()
        .filter_map(|id| old.try_take(|f| f["re"] == id.as_str()));
    let acked: HashSet<String> = std::iter::once(first)
        .chain(later)
        .filter(|f| f["type"] == "sent")
        .map(|f| f["client_msg_id"].as_str().unwrap().to_owned())
        .collect();
    // Every message the old connection had accepted (and so stored) was acked on it.
    let stored: HashSet<String> = all_messages(&server.http(), "alice", &chat)
        .await
        .iter()
        .map(|m| m["client_msg_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!stored.is_empty());
    let unacked: Vec<_> = stored.difference(&acked).collect();
    assert!(unacked.is_empty(), "stored but never acked: {unacked:?}");
}

#[tokio::test]
async fn devices_beyond_the_cap_are_refused_but_known_devices_reconnect() {
    let server = TestServer::start_with(|a| a.gateway.max_devices_per_user = 3).await;
    let _kept: Vec<WsClient> =
        futures_util::future::join_all(["a", "b", "c"].map(|d| server.connect("alice", d))).await;
    assert!(refused(server.addr, "alice", "d").await);
    let mut again = server.connect("alice", "b").await;
    assert_alive(&mut again).await;
}

#[tokio::test]
async fn connections_per_address_are_capped_and_freed_on_close() {
    let server = TestServer::start_with(|a| a.common.http.max_connections_per_address = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let over = WsClient::connect(server.addr, "alice", Some("phone")).await;
    assert!(
        over.is_err(),
        "a sixth connection from one address was accepted"
    );
    held.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fits = server.connect("alice", "phone").await;
    assert_alive(&mut fits).await;
}

#[tokio::test]
async fn connections_per_server_are_capped() {
    let server = TestServer::start_with(|a| {
        a.common.http.max_connections = 3;
        a.common.http.max_connections_per_address = 0;
    })
    .await;
    let _a = server.connect("alice", "phone").await;
    let _b = server.connect("bob", "phone").await;
    let _c = server.connect("carol", "phone").await;
    assert!(refused(server.addr, "dave", "phone").await);
}

#[tokio::test]
async fn connects_per_user_are_rated() {
    let server =
        TestServer::start_with(|a| a.gateway.limits.limit_connects = "1/m,3".parse().unwrap())
            .await;
    for _ in 0..3 {
        server.connect("alice", "phone").await;
    }
    let url = format!("/v1/ws?token={}&device=phone", token("alice", None));
    match server.try_connect_url(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        _ => panic!("a fourth connect within the minute was accepted"),
    }
    // Another user is not affected.
    server.connect("bob", "phone").await;
}
