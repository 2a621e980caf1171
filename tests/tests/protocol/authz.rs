//! Authorization on every path: a non-member can neither write, read, see history, get
//! typing, move watermarks nor see presence of a chat; unknown chats are not_found.

use chat_testkit::{token, TestServer};
use serde_json::{json, Map};

use crate::helpers::*;

#[tokio::test]
async fn a_non_member_can_do_nothing_in_a_chat_over_websocket() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    alice.send_message(&chat, "secret", "for bob only").await;
    let mut mallory = server.connect("mallory", "phone").await;

    let send = mallory
        .request(json!({"type": "send", "chat_id": chat, "client_msg_id": "x", "body": "hi"}))
        .await;
    assert_eq!(error_code(&send), "forbidden");
    let history = mallory
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(error_code(&history), "forbidden");
    let recv = mallory
        .request(json!({"type": "recv", "chat_id": chat, "seq": 1}))
        .await;
    assert_eq!(error_code(&recv), "forbidden");
    let read = mallory
        .request(json!({"type": "read", "chat_id": chat, "seq": 1}))
        .await;
    assert_eq!(error_code(&read), "forbidden");
    let typing = mallory
        .request(json!({"type": "typing", "chat_id": chat}))
        .await;
    assert_eq!(error_code(&typing), "forbidden");

    // A cursor for someone else's chat yields nothing of it.
    let mut cursors = Map::new();
    cursors.insert(chat.clone(), json!(0));
    let (messages, synced) = mallory.sync_all(cursors, 100).await;
    assert!(messages.is_empty());
    assert_eq!(synced["chats"], json!([]));

    // Mallory's attempts changed nothing and leaked nothing live.
    alice.send_message(&chat, "second", "still private").await;
    alice
        .send_json(json!({"type": "typing", "chat_id": chat}))
        .await;
    assert_silent(&mut mallory, |f| {
        f["type"] == "msg" || f["type"] == "typing"
    })
    .await;
    let own = alice
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(own["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_chats_are_not_found() {
    let server = TestServer::start().await;
    let mut alice = server.connect("alice", "phone").await;
    let send = alice
        .request(
            json!({"type": "send", "chat_id": "no-such-chat", "client_msg_id": "x", "body": "hi"}),
        )
        .await;
    assert_eq!(error_code(&send), "not_found");
    let history = alice
        .request(json!({"type": "history", "chat_id": "no-such-chat"}))
        .await;
    assert_eq!(error_code(&history), "not_found");
    let (status, body) = server
        .http()
        .get("/v1/chats/no-such-chat", Some(&token("alice", None)))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_non_member_can_do_nothing_in_a_chat_over_rest() {
    let server = TestServer::start().await;
    let chat = group_chat(&server, "alice", &["bob"]).await;
    let http = server.http();
    let mallory = token("mallory", None);
    let (status, body) = http.get(&format!("/v1/chats/{chat}"), Some(&mallory)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = http
        .get(&format!("/v1/chats/{chat}/messages"), Some(&mallory))
        .await;
    assert_eq!(status, 403);
    let (status, _) = http
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&mallory),
            json!({"client_msg_id": "x", "body": "y"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = http
        .post(
            &format!("/v1/chats/{chat}/members"),
            Some(&mallory),
            json!({"user_ids": ["mallory"]}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/bob"), Some(&mallory))
        .await;
    assert_eq!(status, 403);
    let (_, list) = http.get("/v1/chats", Some(&mallory)).await;
    assert_eq!(list["chats"], json!([]));
    let (_, chat_now) = http
        .get(&format!("/v1/chats/{chat}"), Some(&token("alice", None)))
        .await;
    assert_eq!(chat_now["members"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn only_admins_manage_group_members_and_anyone_may_leave() {
    let server = TestServer::start().await;
    let chat = group_chat(&server, "alice", &["bob", "carol"]).await;
    let http = server.http();
    let (bob, alice) = (token("bob", None), token("alice", None));
    let (status, _) = http
        .post(
            &format!("/v1/chats/{chat}/members"),
            Some(&bob),
            json!({"user_ids": ["dave"]}),
        )
        .await;
    assert_eq!(status, 403, "members may not add");
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/carol"), Some(&bob))
        .await;
    assert_eq!(status, 403, "members may not remove others");
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/bob"), Some(&bob))
        .await;
    assert_eq!(status, 204, "anyone may leave");
    let (status, _) = http.get(&format!("/v1/chats/{chat}"), Some(&bob)).await;
    assert_eq!(status, 403, "a former member sees nothing");
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/zed"), Some(&alice))
        .await;
    assert_eq!(status, 404);
    let (status, body) = http
        .post(
            &format!("/v1/chats/{chat}/members"),
            Some(&alice),
            json!({"user_ids": ["bad id"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let direct = direct_chat(&server, "alice", "bob").await;
    let (status, _) = http
        .post(
            &format!("/v1/chats/{direct}/members"),
            Some(&alice),
            json!({"user_ids": ["carol"]}),
        )
        .await;
    assert_eq!(status, 403, "direct chats have fixed members");
}

#[tokio::test]
async fn presence_is_visible_only_to_users_who_share_a_chat() {
    let server = TestServer::start().await;
    direct_chat(&server, "alice", "bob").await;
    let _bob = server.connect("bob", "phone").await;
    let _stranger = server.connect("stranger", "phone").await;
    let mut alice = server.connect("alice", "phone").await;
    let reply = alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob", "stranger"]}))
        .await;
    assert_eq!(reply["type"], "presence");
    let users = reply["users"].as_array().unwrap();
    assert_eq!(users[0]["user_id"], "bob");
    assert_eq!(users[0]["online"], true);
    assert_eq!(users[1]["user_id"], "stranger");
    assert_eq!(users[1]["online"], false);
    assert_eq!(users[1]["error"], "forbidden");
    assert!(users[1]["last_seen"].is_null());

    let (status, rest) = server
        .http()
        .get(
            "/v1/presence?user_ids=bob,stranger",
            Some(&token("alice", None)),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(rest["users"][0]["online"], true);
    assert_eq!(rest["users"][1]["error"], "forbidden");

    // A user named twice is answered once, where first named, with their real state.
    let (_, twice) = server
        .http()
        .get(
            "/v1/presence?user_ids=bob,stranger,bob,bob",
            Some(&token("alice", None)),
        )
        .await;
    let users = twice["users"].as_array().unwrap();
    let ids: Vec<&str> = users
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bob", "stranger"]);
    assert_eq!(users[0]["online"], true);
    assert!(users[0]["error"].is_null(), "{twice}");
}

#[tokio::test]
async fn when_the_last_admin_leaves_the_longest_standing_member_becomes_admin() {
    let server = TestServer::start().await;
    let chat = group_chat(&server, "alice", &["bob", "carol"]).await;
    let http = server.http();
    let (alice, bob, carol) = (
        token("alice", None),
        token("bob", None),
        token("carol", None),
    );
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/alice"), Some(&alice))
        .await;
    assert_eq!(status, 204);
    let (_, now) = http.get(&format!("/v1/chats/{chat}"), Some(&bob)).await;
    let roles: Vec<(&str, &str)> = now["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("bob", "admin"), ("carol", "member")]);
    // The group can still grow: its new admin adds a member, a plain member still may not.
    let add = |who: &str| json!({"user_ids": [who]});
    let url = format!("/v1/chats/{chat}/members");
    assert_eq!(http.post(&url, Some(&carol), add("dave")).await.0, 403);
    assert_eq!(http.post(&url, Some(&bob), add("dave")).await.0, 200);
}

#[tokio::test]
async fn leaving_a_direct_chat_hides_it_until_a_new_message_arrives() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let http = server.http();
    let (alice, bob) = (token("alice", None), token("bob", None));
    let mut bob_ws = server.connect("bob", "phone").await;
    bob_ws.send_message(&chat, "m1", "hi").await;
    let listed = |list: &serde_json::Value| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["chat_id"] == chat.as_str())
    };
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/alice"), Some(&alice))
        .await;
    assert_eq!(status, 204);
    let (_, list) = http.get("/v1/chats", Some(&alice)).await;
    assert!(!listed(&list["chats"]), "hidden for alice: {list}");
    let (_, list) = http.get("/v1/chats", Some(&bob)).await;
    assert!(listed(&list["chats"]), "not for bob");
    // Still hers: history reads, and the next message brings it back.
    let (status, _) = http
        .get(&format!("/v1/chats/{chat}/messages"), Some(&alice))
        .await;
    assert_eq!(status, 200);
    bob_ws.send_message(&chat, "m2", "still there?").await;
    let (_, list) = http.get("/v1/chats", Some(&alice)).await;
    assert!(listed(&list["chats"]), "back with the new message: {list}");
    // Nobody removes the other member of a direct chat.
    let (status, _) = http
        .delete(&format!("/v1/chats/{chat}/members/bob"), Some(&alice))
        .await;
    assert_eq!(status, 403);
}
