//! Shared set-up for the hostile-client suite.

use std::net::SocketAddr;
use std::time::Duration;

use chat_testkit::{token, Http, WsClient};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A group of `owner` and `members`, over REST.
pub async fn group(http: &Http, owner: &str, members: &[String]) -> String {
    http.create_chat(
        &token(owner, None),
        json!({"kind": "group", "title": "g", "members": members}),
    )
    .await
}

/// Answers to requests past a per-user cap: each is 204, or 413 `too_large` (anything else
/// fails the test); returns how many were refused.
pub fn refusals(answers: &[(u16, Value)]) -> usize {
    let mut refused = 0;
    for (i, (status, body)) in answers.iter().enumerate() {
        match status {
            204 => {}
            413 => {
                assert_eq!(body["error"]["code"], "too_large", "{body}");
                refused += 1;
            }
            other => panic!("request {i}: {other} {body}"),
        }
    }
    refused
}

/// True once the server has closed `socket` (EOF or reset) within `wait`.
pub async fn closed_within(socket: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (408, say) before the close: keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

/// The connection still answers requests.
pub async fn assert_alive(client: &mut WsClient) {
    let pong = client.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// Every message of a chat, read over REST page by page.
pub async fn all_messages(http: &Http, user: &str, chat: &str) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    loop {
        let after = messages.last().map_or(0, |m| m["seq"].as_u64().unwrap());
        let (status, page) = http
            .get(
                &format!("/v1/chats/{chat}/messages?after_seq={after}&limit=200"),
                Some(&token(user, None)),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let page = page["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            return messages;
        }
        messages.extend(page);
    }
}

/// A WebSocket client that is expected to be refused; true when it was.
pub async fn refused(addr: SocketAddr, user: &str, device: &str) -> bool {
    WsClient::connect(addr, user, Some(device)).await.is_err()
}
