//! Sending and receiving: durable acks, fan-out to every device, idempotent resends,
//! receipts, typing, history and gap-free catch-up.

use std::time::Duration;

use chat_testkit::{token, TestServer};
use serde_json::{json, Map};

use crate::helpers::*;

#[tokio::test]
async fn a_message_reaches_every_device_of_every_member_but_the_sending_session() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice_phone = server.connect("alice", "phone").await;
    let mut alice_laptop = server.connect("alice", "laptop").await;
    let mut bob_phone = server.connect("bob", "phone").await;
    let mut bob_tablet = server.connect("bob", "tablet").await;

    let sent = alice_phone.send_message(&chat, "m1", "hello bob").await;
    assert_eq!(sent["chat_id"], chat);
    assert_eq!(sent["client_msg_id"], "m1");
    assert_eq!(sent["seq"], 1);
    let msg_id = sent["msg_id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(msg_id).unwrap().get_version_num(), 7);

    for client in [&mut bob_phone, &mut bob_tablet, &mut alice_laptop] {
        let msg = client.wait_for(is_msg_of(&chat)).await;
        assert_eq!(msg["msg_id"], msg_id);
        assert_eq!(msg["seq"], 1);
        assert_eq!(msg["sender_id"], "alice");
        assert_eq!(msg["client_msg_id"], "m1");
        assert_eq!(msg["body"], "hello bob");
        assert_eq!(msg["ts"], sent["ts"]);
    }
    assert_silent(&mut alice_phone, is_msg_of(&chat)).await;
}

#[tokio::test]
async fn resending_a_client_msg_id_returns_the_original_and_creates_nothing() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let mut bob = server.connect("bob", "phone").await;
    let first = alice.send_message(&chat, "same", "one").await;
    bob.wait_for(is_msg_of(&chat)).await;

    let again = alice.send_message(&chat, "same", "one, resent").await;
    assert_eq!(again["msg_id"], first["msg_id"]);
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(again["ts"], first["ts"]);
    assert_silent(&mut bob, is_msg_of(&chat)).await;

    // From another connection and over REST too.
    let mut alice_laptop = server.connect("alice", "laptop").await;
    let third = alice_laptop.send_message(&chat, "same", "x").await;
    assert_eq!(third["msg_id"], first["msg_id"]);
    let (status, rest) = server
        .http()
        .post(
            &format!("/v1/chats/{chat}/messages"),
            Some(&token("alice", None)),
            json!({"client_msg_id": "same", "body": "x"}),
        )
        .await;
    assert_eq!(status, 200, "an idempotent repeat is 200: {rest}");
    assert_eq!(rest["msg_id"], first["msg_id"]);

    // The same client_msg_id from another sender is a different message.
    let from_bob = bob.send_message(&chat, "same", "bob's").await;
    assert_ne!(from_bob["msg_id"], first["msg_id"]);
    assert_eq!(from_bob["seq"], 2);

    let history = alice
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn pipelined_resends_of_one_id_in_one_batch_yield_one_message() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    for i in 0..20 {
        alice
            .send_json(json!({"type": "send", "id": format!("p{i}"), "chat_id": chat, "client_msg_id": "dup", "body": "b"}))
            .await;
    }
    let mut seqs = Vec::new();
    for i in 0..20 {
        let reply = alice.reply_to(&format!("p{i}")).await;
        assert_eq!(reply["type"], "sent", "{reply}");
        seqs.push(reply["seq"].as_u64().unwrap());
    }
    assert!(seqs.iter().all(|s| *s == 1), "{seqs:?}");
}

#[tokio::test]
async fn delivery_and_read_receipts_follow_watermarks() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let mut bob = server.connect("bob", "phone").await;
    let mut bob_laptop = server.connect("bob", "laptop").await;
    for i in 1..=3 {
        alice.send_message(&chat, &format!("m{i}"), "hi").await;
    }

    let ok = bob
        .request(json!({"type": "recv", "chat_id": chat, "seq": 2}))
        .await;
    assert_eq!(ok["type"], "ok");
    let receipt = alice.wait_for(|f| f["type"] == "receipt").await;
    assert_eq!(
        receipt,
        json!({"type": "receipt", "chat_id": chat, "user_id": "bob", "kind": "delivered", "seq": 2})
    );
    // The watermark does not move back, so no new receipt.
    bob.request(json!({"type": "recv", "chat_id": chat, "seq": 1}))
        .await;
    assert_silent(&mut alice, |f| f["type"] == "receipt").await;
    // Delivery receipts go to the others only.
    assert_silent(&mut bob_laptop, |f| {
        f["type"] == "receipt" && f["kind"] == "delivered"
    })
    .await;

    // recv without an id works too, silently.
    bob.send_json(json!({"type": "recv", "chat_id": chat, "seq": 3}))
        .await;
    let receipt = alice.wait_for(|f| f["type"] == "receipt").await;
    assert_eq!(receipt["seq"], 3);

    bob.request(json!({"type": "read", "chat_id": chat, "seq": 3}))
        .await;
    let read = alice
        .wait_for(|f| f["type"] == "receipt" && f["kind"] == "read")
        .await;
    assert_eq!(read["user_id"], "bob");
    assert_eq!(read["seq"], 3);
    // The reader's other device learns it too.
    let mine = bob_laptop
        .wait_for(|f| f["type"] == "receipt" && f["kind"] == "read")
        .await;
    assert_eq!(mine["seq"], 3);

    // A watermark past the head is refused.
    let beyond = bob
        .request(json!({"type": "read", "chat_id": chat, "seq": 99}))
        .await;
    assert_eq!(error_code(&beyond), "bad_request");

    let (_, list) = server
        .http()
        .get("/v1/chats", Some(&token("bob", None)))
        .await;
    let entry = &list["chats"][0];
    assert_eq!(entry["read_seq"], 3);
    assert_eq!(entry["delivered_seq"], 3);
    assert_eq!(entry["unread"], 0);
}

#[tokio::test]
async fn typing_reaches_the_other_members_only_and_is_not_stored() {
    let server = TestServer::start().await;
    let chat = group_chat(&server, "alice", &["bob", "carol"]).await;
    let mut alice = server.connect("alice", "phone").await;
    let mut alice_laptop = server.connect("alice", "laptop").await;
    let mut bob = server.connect("bob", "phone").await;
    let mut carol = server.connect("carol", "phone").await;
    alice
        .send_json(json!({"type": "typing", "chat_id": chat}))
        .await;
    for client in [&mut bob, &mut carol] {
        let typing = client.wait_for(|f| f["type"] == "typing").await;
        assert_eq!(
            typing,
            json!({"type": "typing", "chat_id": chat, "user_id": "alice"})
        );
    }
    assert_silent(&mut alice_laptop, |f| f["type"] == "typing").await;
    let ok = alice
        .request(json!({"type": "typing", "chat_id": chat}))
        .await;
    assert_eq!(ok["type"], "ok");
    let history = bob
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(history["messages"], json!([]));
}

#[tokio::test]
async fn history_pages_backwards_in_ascending_order() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    for i in 1..=30 {
        alice
            .send_message(&chat, &format!("m{i}"), &format!("body {i}"))
            .await;
    }
    let latest = alice
        .request(json!({"type": "history", "chat_id": chat, "limit": 10}))
        .await;
    assert_eq!(latest["type"], "history");
    assert_eq!(latest["chat_id"], chat);
    let seqs: Vec<u64> = latest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
    let older = alice
        .request(json!({"type": "history", "chat_id": chat, "before_seq": 21, "limit": 15}))
        .await;
    let seqs: Vec<u64> = older["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (6..=20).collect::<Vec<_>>());
    let default = alice
        .request(json!({"type": "history", "chat_id": chat}))
        .await;
    assert_eq!(default["messages"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn sync_catches_up_gap_free_from_cursors_and_watermarks() {
    let server = TestServer::start().await;
    let direct = direct_chat(&server, "alice", "bob").await;
    let group = group_chat(&server, "alice", &["bob"]).await;
    let mut alice = server.connect("alice", "phone").await;
    for i in 1..=25 {
        alice.send_message(&direct, &format!("d{i}"), "d").await;
        alice.send_message(&group, &format!("g{i}"), "g").await;
    }
    // Bob was offline; a new device syncs everything, in small pages.
    let mut bob = server.connect("bob", "phone").await;
    let (messages, synced) = bob.sync_all(Map::new(), 7).await;
    assert_eq!(synced["complete"], true);
    for chat in [&direct, &group] {
        let seqs: Vec<u64> = messages
            .iter()
            .filter(|m| m["chat_id"] == **chat)
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=25).collect::<Vec<_>>(), "chat {chat}");
    }
    let chats = synced["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 2);
    for c in chats {
        assert_eq!(c["head_seq"], 25);
        assert_eq!(c["unread"], 25);
        assert!(c["kind"] == "direct" || c["kind"] == "group");
    }

    // With explicit cursors only the rest comes back.
    let mut cursors = Map::new();
    cursors.insert(direct.clone(), json!(20));
    cursors.insert(group.clone(), json!(25));
    let (rest, _) = bob.sync_all(cursors, 1000).await;
    let seqs: Vec<u64> = rest.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![21, 22, 23, 24, 25]);

    // A device that acked up to 10 in the direct chat resumes there when it omits the cursor.
    bob.request(json!({"type": "recv", "chat_id": direct, "seq": 10}))
        .await;
    bob.request(json!({"type": "recv", "chat_id": group, "seq": 25}))
        .await;
    let mut bob_again = server.connect("bob", "phone").await;
    let (resumed, _) = bob_again.sync_all(Map::new(), 1000).await;
    let seqs: Vec<u64> = resumed.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (11..=25).collect::<Vec<_>>());
    assert!(resumed.iter().all(|m| m["chat_id"] == direct));
}

#[tokio::test]
async fn a_first_sync_reports_incomplete_until_drained() {
    let server = TestServer::start().await;
    let chat = direct_chat(&server, "alice", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    for i in 1..=5 {
        alice.send_message(&chat, &format!("m{i}"), "x").await;
    }
    let mut bob = server.connect("bob", "phone").await;
    let first = bob
        .request(json!({"type": "sync", "cursors": {}, "limit": 3}))
        .await;
    assert_eq!(first["type"], "synced");
    assert_eq!(first["complete"], false);
    let got = bob
        .collect_for(Duration::from_millis(200), is_msg_of(&chat))
        .await;
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn membership_changes_are_announced_with_chat_frames() {
    let server = TestServer::start().await;
    let mut bob = server.connect("bob", "phone").await;
    let mut carol = server.connect("carol", "phone").await;
    let chat = group_chat(&server, "alice", &["bob"]).await;
    let added = bob.wait_for(|f| f["type"] == "chat").await;
    assert_eq!(added["event"], "added");
    assert_eq!(added["chat"]["chat_id"], chat);
    assert_eq!(added["chat"]["kind"], "group");

    let alice_token = token("alice", None);
    let (status, _) = server
        .http()
        .post(
            &format!("/v1/chats/{chat}/members"),
            Some(&alice_token),
            json!({"user_ids": ["carol"]}),
        )
        .await;
    assert_eq!(status, 200);
    let carol_added = carol.wait_for(|f| f["type"] == "chat").await;
    assert_eq!(carol_added["chat"]["chat_id"], chat);
    assert_eq!(carol_added["chat"]["member_count"], 3);
    // The others get what changed and the chat's version, never the member list.
    let updated = bob.wait_for(|f| f["type"] == "chat").await;
    assert_eq!(updated["event"], "updated");
    assert!(updated["chat"].get("members").is_none(), "{updated}");
    assert_eq!(
        updated["changes"],
        json!([{"op": "member_added", "user_id": "carol", "role": "member"}])
    );
    assert_eq!(updated["chat"]["version"], 1);

    let (status, _) = server
        .http()
        .delete(
            &format!("/v1/chats/{chat}/members/carol"),
            Some(&alice_token),
        )
        .await;
    assert_eq!(status, 204);
    let removed = carol
        .wait_for(|f| f["type"] == "chat" && f["event"] == "removed")
        .await;
    assert_eq!(removed["chat"]["chat_id"], chat);
    let left = bob
        .wait_for(|f| f["type"] == "chat" && f["event"] == "updated")
        .await;
    assert_eq!(
        left["changes"],
        json!([{"op": "member_removed", "user_id": "carol"}])
    );
    assert_eq!(
        left["chat"]["version"], 2,
        "one more than the last frame: nothing missed"
    );
    let (_, full) = server
        .http()
        .get(&format!("/v1/chats/{chat}"), Some(&alice_token))
        .await;
    assert_eq!(
        full["version"], 2,
        "REST has the same version, with the members"
    );
    assert_eq!(full["members"].as_array().unwrap().len(), 2);
    // Carol no longer gets the chat's messages.
    let mut alice = server.connect("alice", "phone").await;
    alice.send_message(&chat, "after-removal", "x").await;
    bob.wait_for(is_msg_of(&chat)).await;
    assert_silent(&mut carol, is_msg_of(&chat)).await;
}

#[tokio::test]
async fn a_change_in_a_large_group_is_a_small_frame_for_every_member() {
    let server = TestServer::start().await;
    let members: Vec<String> = (0..400).map(|i| format!("member-{i:03}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let chat = group_chat(&server, "alice", &refs).await;
    let mut watcher = server.connect("member-000", "phone").await;
    let (status, _) = server
        .http()
        .post(
            &format!("/v1/chats/{chat}/members"),
            Some(&token("alice", None)),
            json!({"user_ids": ["newcomer"]}),
        )
        .await;
    assert_eq!(status, 200);
    let frame = watcher
        .wait_for(|f| f["type"] == "chat" && f["event"] == "updated")
        .await;
    let bytes = frame.to_string().len();
    // With the member list it was ~14 KB here (~190 KiB in a 4,902-member group).
    assert!(bytes < 400, "{bytes} bytes: {frame}");
    assert_eq!(frame["chat"]["member_count"], 402);
}
