//! Bad input gets its error frame and changes nothing; the connection keeps working.

use chat_testkit::{TestServer, WsClient};
use serde_json::json;

use crate::helpers::*;

async fn next_error(client: &mut WsClient) -> serde_json::Value {
    client.wait_for(|f| f["type"] == "error").await
}

#[tokio::test]
async fn malformed_frames_get_bad_request_and_the_connection_survives() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut client = server.connect("alice", "phone").await;

    client.send_binary(vec![1, 2, 3]).await;
    assert_eq!(error_code(&next_error(&mut client).await), "bad_request");
    assert_alive(&mut client).await;

    client.send_text("{not json".into()).await;
    let e = next_error(&mut client).await;
    assert_eq!(error_code(&e), "bad_request");
    assert!(e["message"].as_str().unwrap().contains("invalid JSON"));
    assert_alive(&mut client).await;

    client.send_text("[1,2]".into()).await;
    assert_eq!(error_code(&next_error(&mut client).await), "bad_request");

    let unknown = client.request(json!({"type": "dance"})).await;
    assert_eq!(error_code(&unknown), "bad_request");
    assert!(unknown["message"].as_str().unwrap().contains("dance"));

    let wrong_type = client
        .request(json!({"type": "send", "chat_id": chat, "client_msg_id": "x", "body": 42}))
        .await;
    assert_eq!(error_code(&wrong_type), "bad_request");

    let missing = client
        .request(json!({"type": "send", "chat_id": chat, "body": "no cmid"}))
        .await;
    assert_eq!(error_code(&missing), "bad_request");
    assert!(missing["message"]
        .as_str()
        .unwrap()
        .contains("client_msg_id"));

    let negative_seq = client
        .request(json!({"type": "recv", "chat_id": chat, "seq": -1}))
        .await;
    assert_eq!(error_code(&negative_seq), "bad_request");

    let no_type = client.request(json!({"chat_id": chat})).await;
    assert_eq!(error_code(&no_type), "bad_request");

    assert_alive(&mut client).await;
    // None of it created a message.
    let history = client
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(history["messages"], json!([]));
}

#[tokio::test]
async fn oversize_body_is_too_large_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut client = server.connect("alice", "phone").await;
    let body = "x".repeat(16 * 1024 + 1);
    let reply = client
        .request(json!({"type": "send", "chat_id": chat, "client_msg_id": "big", "body": body}))
        .await;
    assert_eq!(error_code(&reply), "too_large");
    let exact = "y".repeat(16 * 1024);
    client.send_message(&chat, "exact", &exact).await;
    let history = client
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
    assert_eq!(history["messages"][0]["client_msg_id"], "exact");
}

#[tokio::test]
async fn oversize_frame_is_too_large_and_huge_frame_closes_with_1009() {
    let server = TestServer::start().await;
    let mut client = server.connect("alice", "phone").await;
    // Over max_frame_bytes (64 KiB) but under the hard limit: an error, connection open.
    let padding = "p".repeat(70 * 1024);
    client
        .send_json(json!({"type": "ping", "id": "big", "pad": padding}))
        .await;
    assert_eq!(error_code(&next_error(&mut client).await), "too_large");
    assert_alive(&mut client).await;
    // Over the hard limit: closed with 1009.
    let huge = "h".repeat(300 * 1024);
    client
        .send_json(json!({"type": "ping", "id": "huge", "pad": huge}))
        .await;
    assert_eq!(client.wait_closed().await, Some(1009));
    // The server itself is fine.
    let mut again = server.connect("alice", "phone").await;
    assert_alive(&mut again).await;
}

#[tokio::test]
async fn overlong_ids_are_refused() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut client = server.connect("alice", "phone").await;
    let long = "c".repeat(65);
    let reply = client
        .request(json!({"type": "send", "chat_id": chat, "client_msg_id": long, "body": "x"}))
        .await;
    assert_eq!(error_code(&reply), "bad_request");
    client.send_json(json!({"type": "ping", "id": long})).await;
    let e = next_error(&mut client).await;
    assert_eq!(error_code(&e), "bad_request");
    assert!(e.get("re").is_none(), "an unusable id is not echoed: {e}");
}

#[tokio::test]
async fn repeated_violations_close_the_connection() {
    let server = TestServer::start_with(|a| a.gateway.max_violations = 5).await;
    let mut client = server.connect("alice", "phone").await;
    for _ in 0..10 {
        client.send_text("nope".into()).await;
    }
    assert_eq!(client.wait_closed().await, Some(1008));
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut client = server.connect("alice", "phone").await;
    client.send_raw_text(vec![b'{', 0xff, 0xfe, b'}']).await;
    assert_eq!(
        client.wait_closed().await,
        Some(1007),
        "invalid data, not 1009"
    );
    // The server is fine: the next client talks to it.
    let mut next = server.connect("bob", "phone").await;
    assert_eq!(next.request(json!({"type": "ping"})).await["type"], "pong");
}
