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

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

fn unexpiring(sub: &str) -> Claims {
    Claims {
        sub: sub.into(),
        device: None,
        exp: None,
        nbf: None,
        iat: None,
        iss: None,
        aud: None,
    }
}

/// The HTTP status an upgrade with this path and query is refused with.
async fn refusal(server: &TestServer, query: &str) -> u16 {
    match server.try_connect_url(query).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{query}: unexpected error {other}"),
        Ok(_) => panic!("{query}: connection was accepted"),
    }
}

#[tokio::test]
async fn device_defaults_then_comes_from_the_token_which_binds_it() {
    let server = TestServer::start().await;
    let plain = WsClient::connect(server.addr, "alice", None).await.unwrap();
    assert_eq!(plain.hello["device_id"], "default");
    let keys = JwtKeys::new(TEST_SECRET.as_bytes()).unwrap();
    let with_device = keys.mint("alice", Some("tablet"), HOUR).unwrap();
    let client = server
        .try_connect_url(&format!("/v1/ws?token={with_device}"))
        .await
        .unwrap();
    assert_eq!(client.hello["device_id"], "tablet");
    let same = server
        .try_connect_url(&format!("/v1/ws?token={with_device}&device=tablet"))
        .await
        .unwrap();
    assert_eq!(same.hello["device_id"], "tablet");
    // A tablet's token cannot connect, and ack, as the phone.
    let other = format!("/v1/ws?token={with_device}&device=phone");
    assert_eq!(refusal(&server, &other).await, 403);
}

#[tokio::test]
async fn tokens_must_expire_unless_the_server_allows_otherwise() {
    let keys = JwtKeys::new(TEST_SECRET.as_bytes()).unwrap();
    let forever = keys.sign(&unexpiring("alice")).unwrap();
    let query = format!("/v1/ws?token={forever}");
    let strict = TestServer::start().await;
    assert_eq!(refusal(&strict, &query).await, 401);
    let lenient = TestServer::start_with(|args| args.tokens.jwt_allow_no_exp = true).await;
    let client = lenient.try_connect_url(&query).await.unwrap();
    assert_eq!(client.hello["user_id"], "alice");
}

#[tokio::test]
async fn during_a_secret_rotation_tokens_of_both_secrets_connect() {
    let server = TestServer::start_with(|args| {
        args.tokens.jwt_secret_next = Some("the-next-secret".into());
    })
    .await;
    for secret in [TEST_SECRET, "the-next-secret"] {
        let token = JwtKeys::new(secret.as_bytes())
            .unwrap()
            .mint("alice", None, HOUR)
            .unwrap();
        let client = server
            .try_connect_url(&format!("/v1/ws?token={token}"))
            .await
            .unwrap();
        assert_eq!(client.hello["user_id"], "alice", "{secret}");
    }
    let stranger = JwtKeys::new(b"a-third-secret")
        .unwrap()
        .mint("alice", None, HOUR)
        .unwrap();
    assert_eq!(
        refusal(&server, &format!("/v1/ws?token={stranger}")).await,
        401
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_before_the_upgrade() {
    let server = TestServer::start().await;
    let keys = JwtKeys::new(TEST_SECRET.as_bytes()).unwrap();
    let expired = keys
        .sign(&Claims {
            exp: Some(1_000),
            ..unexpiring("alice")
        })
        .unwrap();
    let bad_user = keys
        .sign(&Claims {
            exp: Some(4_000_000_000),
            ..unexpiring("bad user!")
        })
        .unwrap();
    let other_secret = JwtKeys::new(b"other")
        .unwrap()
        .mint("alice", None, HOUR)
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

#[tokio::test]
async fn a_login_service_signs_tokens_with_its_own_key_under_its_issuer_and_audience() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/auth/tests/fixtures");
    let server = TestServer::start_with(|args| {
        args.tokens.jwt_jwks_file = Some(fixtures.join("jwks.json"));
        args.tokens.jwt_issuer = Some("https://login.example".into());
        args.tokens.jwt_audience = Some("chat".into());
    })
    .await;
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixtures.join("rsa.key")).unwrap()).unwrap();
    let sign = |iss: &str, aud: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("login-2026-11".into());
        let claims = Claims {
            exp: Some(4_000_000_000),
            iss: Some(iss.into()),
            aud: Some(json!(aud)),
            device: Some("phone".into()),
            ..unexpiring("alice")
        };
        encode(&header, &claims, &key).unwrap()
    };
    let good = sign("https://login.example", "chat");
    let client = server
        .try_connect_url(&format!("/v1/ws?token={good}"))
        .await
        .unwrap();
    assert_eq!(
        (
            client.hello["user_id"].as_str(),
            client.hello["device_id"].as_str()
        ),
        (Some("alice"), Some("phone"))
    );
    for bad in [
        sign("https://evil.example", "chat"),
        sign("https://login.example", "other"),
    ] {
        assert_eq!(refusal(&server, &format!("/v1/ws?token={bad}")).await, 401);
    }
    // A token of the server's own secret meets the same checks: without iss/aud, refused.
    let plain = JwtKeys::new(TEST_SECRET.as_bytes())
        .unwrap()
        .mint("bob", None, HOUR)
        .unwrap();
    assert_eq!(
        refusal(&server, &format!("/v1/ws?token={plain}")).await,
        401
    );
}
