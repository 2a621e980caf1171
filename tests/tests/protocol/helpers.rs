//! Shared set-up for the protocol suite.

use chat_testkit::{token, TestServer, WsClient};
use serde_json::{json, Value};
use std::time::Duration;

/// Creates (or finds) the direct chat of `a` and `b`.
pub async fn direct_chat(server: &TestServer, a: &str, b: &str) -> String {
    server
        .http()
        .create_chat(&token(a, None), json!({"kind": "direct", "members": [b]}))
        .await
}

/// Creates a group owned by `owner` with `members`.
pub async fn group_chat(server: &TestServer, owner: &str, members: &[&str]) -> String {
    server
        .http()
        .create_chat(
            &token(owner, None),
            json!({"kind": "group", "title": "g", "members": members}),
        )
        .await
}

/// True for a `msg` frame of `chat_id`.
pub fn is_msg_of(chat_id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| f["type"] == "msg" && f["chat_id"] == chat_id
}

/// Asserts nothing matching `pred` arrives within a short while.
pub async fn assert_silent(client: &mut WsClient, pred: impl Fn(&Value) -> bool) {
    if let Some(frame) = client.try_wait_for(Duration::from_millis(300), pred).await {
        panic!("unexpected frame: {frame}");
    }
}

/// The connection still answers requests.
pub async fn assert_alive(client: &mut WsClient) {
    let pong = client.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

pub fn error_code(frame: &Value) -> &str {
    assert_eq!(frame["type"], "error", "expected an error, got {frame}");
    frame["code"].as_str().expect("code")
}
