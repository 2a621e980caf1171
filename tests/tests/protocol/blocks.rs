//! Blocking: a blocked user cannot start a direct chat with the blocker or message them
//! there, and stops seeing their presence; groups are untouched; unblocking undoes it.

use chat_testkit::{token, TestServer};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_blocked_user_cannot_reach_the_blocker_until_unblocked() {
    let server = TestServer::start().await;
    let http = server.http();
    let (bob, alice) = (token("bob", None), token("alice", None));
    let direct = direct_chat(&server, "alice", "bob").await;
    let group = group_chat(&server, "carol", &["alice", "bob"]).await;
    let mut alice_ws = server.connect("alice", "phone").await;
    let watch = alice_ws
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    assert!(watch["users"][0]["error"].is_null(), "{watch}");

    assert_eq!(http.put("/v1/blocks/alice", Some(&bob)).await.0, 204);
    assert_eq!(
        http.put("/v1/blocks/alice", Some(&bob)).await.0,
        204,
        "again: no-op"
    );
    let (_, list) = http.get("/v1/blocks", Some(&bob)).await;
    assert_eq!(list["user_ids"], json!(["alice"]));
    let (_, theirs) = http.get("/v1/blocks", Some(&alice)).await;
    assert_eq!(theirs["user_ids"], json!([]), "alice is not told");

    // No messages in their direct chat, either way; the group is untouched.
    let refused = alice_ws
        .request(json!({"type": "send", "chat_id": direct, "client_msg_id": "b1", "body": "hi"}))
        .await;
    assert_eq!(error_code(&refused), "forbidden", "{refused}");
    let (status, _) = http
        .post(
            &format!("/v1/chats/{direct}/messages"),
            Some(&bob),
            json!({"client_msg_id": "b2", "body": "hi"}),
        )
        .await;
    assert_eq!(
        status, 403,
        "the blocker cannot write either until they unblock"
    );
    let in_group = alice_ws.send_message(&group, "g1", "hello group").await;
    assert_eq!(in_group["type"], "sent");
    // No new direct chat with the blocker.
    let (status, _) = http
        .post(
            "/v1/chats",
            Some(&alice),
            json!({"kind": "direct", "members": ["bob"]}),
        )
        .await;
    assert_eq!(status, 403);

    // bob's presence: gone for alice, even though they share the group.
    let _bob_ws = server.connect("bob", "phone").await;
    assert_silent(&mut alice_ws, |f| f["type"] == "presence").await;
    let (_, presence) = http.get("/v1/presence?user_ids=bob", Some(&alice)).await;
    assert_eq!(presence["users"][0]["error"], "forbidden");

    // Unblocked: all of it comes back.
    assert_eq!(http.delete("/v1/blocks/alice", Some(&bob)).await.0, 204);
    let sent = alice_ws.send_message(&direct, "b3", "hi again").await;
    assert_eq!(sent["type"], "sent", "{sent}");
    let (_, presence) = http.get("/v1/presence?user_ids=bob", Some(&alice)).await;
    assert_eq!(presence["users"][0]["online"], true, "{presence}");
}

#[tokio::test]
async fn blocking_refuses_bad_targets_and_strangers() {
    let server = TestServer::start().await;
    let http = server.http();
    let bob = token("bob", None);
    let (status, body) = http.put("/v1/blocks/bob", Some(&bob)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = http.put("/v1/blocks/bad%20id", Some(&bob)).await;
    assert_eq!(status, 400);
    assert_eq!(http.put("/v1/blocks/alice", None).await.0, 401);
    assert_eq!(http.get("/v1/blocks", None).await.0, 401);
    // Blocking someone never met works (a stranger can then never open a chat).
    assert_eq!(http.put("/v1/blocks/mallory", Some(&bob)).await.0, 204);
    let (status, _) = http
        .post(
            "/v1/chats",
            Some(&token("mallory", None)),
            json!({"kind": "direct", "members": ["bob"]}),
        )
        .await;
    assert_eq!(status, 403);
}
