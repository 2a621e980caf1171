//! `--dev-login`: off by default; when on, `POST /v1/dev/token` mints a working token.

use chat_testkit::{TestServer, WsClient};
use serde_json::json;

#[tokio::test]
async fn dev_login_is_off_by_default() {
    let server = TestServer::start().await;
    let (status, _) = server
        .http()
        .post("/v1/dev/token", None, json!({"user_id": "alice"}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn dev_login_mints_a_token_that_connects() {
    let server = TestServer::start_with(|a| a.gateway.dev_login = true).await;
    let (status, body) = server
        .http()
        .post("/v1/dev/token", None, json!({"user_id": "alice"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let url = format!("ws://{}/v1/ws?token={token}&device=web", server.addr);
    let client = WsClient::connect_url(&url).await.unwrap();
    assert_eq!(client.hello["user_id"], "alice");
    let (status, _) = server
        .http()
        .post("/v1/dev/token", None, json!({"user_id": "not valid!"}))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_web_app_is_served_at_the_root() {
    let server = TestServer::start().await;
    let (status, page) = server.http().get_text("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    let (status, _) = server.http().get_text("/sdk/index.js").await;
    assert_eq!(status, 200);
    let (status, _) = server.http().get_text("/app/nope.js").await;
    assert_eq!(status, 404);
}
