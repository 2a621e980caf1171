//! Presence watches are bounded per connection and per user.

use chat_testkit::TestServer;
use serde_json::json;

use crate::helpers::group;

#[tokio::test]
async fn presence_watches_are_capped_per_connection_and_per_user() {
    let server = TestServer::start_with(|a| {
        a.gateway.limits.max_presence_watches = 10;
        a.gateway.limits.max_presence_watches_per_user = 15;
    })
    .await;
    let others: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    group(&server.http(), "alice", &others).await;
    let mut phone = server.connect("alice", "phone").await;
    let first = phone
        .request(json!({"type": "presence_sub", "user_ids": &others[..10]}))
        .await;
    assert_eq!(first["type"], "presence", "{first}");
    // Watching the same users again costs nothing.
    let again = phone
        .request(json!({"type": "presence_sub", "user_ids": &others[..10]}))
        .await;
    assert_eq!(again["type"], "presence", "{again}");
    let over = phone
        .request(json!({"type": "presence_sub", "user_ids": &others[10..11]}))
        .await;
    assert_eq!(over["code"], "too_large", "{over}");

    let mut laptop = server.connect("alice", "laptop").await;
    let fits = laptop
        .request(json!({"type": "presence_sub", "user_ids": &others[10..15]}))
        .await;
    assert_eq!(fits["type"], "presence", "{fits}");
    let over_user = laptop
        .request(json!({"type": "presence_sub", "user_ids": &others[15..16]}))
        .await;
    assert_eq!(over_user["code"], "too_large", "{over_user}");
    // Watches end with their connection, and the user may watch again.
    phone.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = laptop
        .request(json!({"type": "presence_sub", "user_ids": &others[15..20]}))
        .await;
    assert_eq!(after["type"], "presence", "{after}");
}
