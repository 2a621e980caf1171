//! Connecting: authentication, the hello frame, ping, and graceful shutdown.

use chat_auth::{Claims, JwtKeys};
use chat_testkit::{token, TestServer, WsClient, TEST_SECRET};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn hello_describes_the_session() {
    let server = TestServer::start().await;
    let client = server.connect("alice", "phone").await;
    let hello = &client.hello;
    assert_eq!(hello["proto"], 1);
    assert_eq!(hello["user_id"], "alice");
    assert_eq!(hello["device_id"], "phone");
    assert!(uuid::Uuid::parse_str(hello["session_id"].as_str().unwrap()).is_ok());
    assert!(hello["server_id"].as_str().unwrap().starts_with("gw-"));
    assert_eq!(hello["heartbeat_ms"], 30_000);
    assert_eq!(hello["max_frame_bytes"], 65_536);
    assert_eq!(hello["max_body_bytes"], 16_384);
}

#[tokio::test]
async fn device_defaults_then_comes_from_the_token() {
    let server = TestServer::start().await;
    let plain = WsClient::connect(server.addr, "alice", None).await.unwrap();
    assert_eq!(plain.hello["device_id"], "default");
    let keys = JwtKeys::new(TEST_SECRET.as_bytes()).unwrap();
    let with_device = keys.mint("alice", Some("tablet"), None).unwrap();
    let client = server
        .try_connect_url(&format!("/v1/ws?token={with_device}"))
        .await
        .unwrap();
    assert_eq!(client.hello["device_id"], "tablet");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_before_the_upgrade() {
    let server = TestServer::start().await;
    let keys = JwtKeys::new(TEST_SECRET.as_bytes()).unwrap();
    let expired = keys
        .sign(&Claims {
            sub: "alice".into(),
            device: None,
            exp: Some(1_000),
            nbf: None,
            iat: None,
        })
        .unwrap();
    let bad_user = keys
        .sign(&Claims {
            sub: "bad user!".into(),
            device: None,
            exp: None,
            nbf: None,
            iat: None,
        })
        .unwrap();
    let other_secret = JwtKeys::new(b"other")
        .unwrap()
        .mint("alice", None, None)
        .unwrap();
    for query in [
        "/v1/ws".to_string(),
        "/v1/ws?token=garbage".to_string(),
        format!("/v1/ws?token={expired}"),
        format!("/v1/ws?token={bad_user}"),
        format!("/v1/ws?token={other_secret}"),
    ] {
        match server.try_connect_url(&query).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{query}");
            }
            Err(other) => panic!("{query}: unexpected error {other}"),
            Ok(_) => panic!("{query}: connection was accepted"),
        }
    }
    // A bad device id is a bad request, not an identity problem.
    let good = token("alice", None);
    match server
        .try_connect_url(&format!("/v1/ws?token={good}&device=bad%20device"))
        .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400)
        }
        _ => panic!("bad device id accepted"),
    }
}

#[tokio::test]
async fn bearer_header_authenticates_the_upgrade() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start().await;
    let mut request = format!("ws://{}/v1/ws", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token("carol", None)).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    use futures_util::StreamExt;
    let hello = socket.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"user_id\":\"carol\""));
}

#[tokio::test]
async fn ping_gets_pong() {
    let server = TestServer::start().await;
    let mut client = server.connect("alice", "phone").await;
    let pong = client.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["ts"].as_i64().unwrap() > 1_600_000_000_000);
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let server = TestServer::start().await;
    let client = server.connect("alice", "phone").await;
    assert_eq!(client.close_and_await_answer().await, Some(1000));
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_and_keeps_acked_messages() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(temp.path(), |a| {
        a.gateway.reconnect_jitter = std::time::Duration::from_millis(800)
    })
    .await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let sent = alice.send_message(&chat, "before-shutdown", "hi").await;
    server.begin_shutdown();
    let reconnect = alice.wait_for(|f| f["type"] == "reconnect").await;
    let after = reconnect["after_ms"].as_u64().unwrap();
    assert!(after <= 800, "jitter bounded by config: {after}");
    assert_eq!(alice.wait_closed().await, Some(1012));

    server.stop().await;
    let restarted = TestServer::start_in(temp.path(), |_| {}).await;
    let (status, body) = restarted
        .http()
        .get(
            &format!("/v1/chats/{chat}/messages"),
            Some(&token("bob", None)),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"][0]["msg_id"], sent["msg_id"]);
}
