//! Groups above the large-group size fan out once on a group topic; members get exactly
//! what they would get from per-user fan-out, whenever they joined or connected.

use std::time::Duration;

use chat_testkit::{token, TestServer, WsClient};
use serde_json::json;

use crate::helpers::*;

/// Sends probes until `receiver` sees one: its gateway subscribes to large groups in the
/// background after connecting.
async fn until_subscribed(sender: &mut WsClient, receiver: &mut WsClient, chat: &str) {
    for i in 0..100 {
        sender
            .send_message(
                chat,
                &format!("probe-{}-{i}", receiver.hello["session_id"]),
                "probe",
            )
            .await;
        if receiver
            .try_wait_for(Duration::from_millis(100), is_msg_of(chat))
            .await
            .is_some()
        {
            return;
        }
    }
    panic!("never subscribed to the group topic");
}

#[tokio::test]
async fn large_groups_deliver_like_small_ones() {
    let server = TestServer::start_with(|a| a.chat.large_group_members = 2).await;
    let mut bob = server.connect("bob", "phone").await;
    let chat = group_chat(&server, "alice", &["bob", "carol", "dave"]).await;
    // Bob was connected when the group was made: the `chat` frame subscribed him.
    assert_eq!(
        bob.wait_for(|f| f["type"] == "chat").await["event"],
        "added"
    );
    let mut alice = server.connect("alice", "phone").await;
    let mut alice_laptop = server.connect("alice", "laptop").await;
    // Carol connects afterwards: her gateway looks her large groups up.
    let mut carol = server.connect("carol", "phone").await;
    until_subscribed(&mut alice, &mut carol, &chat).await;
    let mut mallory = server.connect("mallory", "phone").await;

    let sent = alice.send_message(&chat, "big-1", "to everyone").await;
    for client in [&mut bob, &mut carol, &mut alice_laptop] {
        let msg = client
            .wait_for(|f| is_msg_of(&chat)(f) && f["client_msg_id"] == "big-1")
            .await;
        assert_eq!(msg["seq"], sent["seq"]);
    }
    assert_silent(&mut alice, |f| f["client_msg_id"] == "big-1").await;
    assert_silent(&mut mallory, is_msg_of(&chat)).await;

    // Typing skips the typist's own devices on the group topic too.
    alice
        .send_json(json!({"type": "typing", "chat_id": chat}))
        .await;
    assert_eq!(
        carol.wait_for(|f| f["type"] == "typing").await["user_id"],
        "alice"
    );
    assert_silent(&mut alice_laptop, |f| f["type"] == "typing").await;

    // A removed member stops receiving the group's events.
    let (status, _) = server
        .http()
        .delete(
            &format!("/v1/chats/{chat}/members/carol"),
            Some(&token("alice", None)),
        )
        .await;
    assert_eq!(status, 204);
    carol
        .wait_for(|f| f["type"] == "chat" && f["event"] == "removed")
        .await;
    alice.send_message(&chat, "big-2", "without carol").await;
    bob.wait_for(|f| f["client_msg_id"] == "big-2").await;
    assert_silent(&mut carol, |f| f["client_msg_id"] == "big-2").await;
}

#[tokio::test]
async fn large_groups_keep_receipts_to_the_readers_own_devices() {
    let server = TestServer::start_with(|a| a.chat.large_group_members = 2).await;
    let chat = group_chat(&server, "alice", &["bob", "carol"]).await;
    let mut alice = server.connect("alice", "phone").await;
    let mut bob = server.connect("bob", "phone").await;
    let mut bob_laptop = server.connect("bob", "laptop").await;
    until_subscribed(&mut alice, &mut bob, &chat).await;
    let sent = alice.send_message(&chat, "big-r", "read me").await;
    let seq = sent["seq"].clone();

    let ok = bob
        .request(json!({"type": "recv", "chat_id": chat, "seq": seq}))
        .await;
    assert_eq!(ok["type"], "ok");
    let ok = bob
        .request(json!({"type": "read", "chat_id": chat, "seq": seq}))
        .await;
    assert_eq!(ok["type"], "ok");

    // The reader's other device follows the read mark...
    let read = bob_laptop
        .wait_for(|f| f["type"] == "receipt" && f["kind"] == "read")
        .await;
    assert_eq!(read["user_id"], "bob");
    assert_eq!(read["seq"], seq);
    // ...while the other members hear of neither: one ack each would be members² frames.
    assert_silent(&mut alice, |f| f["type"] == "receipt").await;
    // The watermarks themselves are kept: bob's chat list shows the chat read.
    let (status, chats) = server
        .http()
        .get("/v1/chats", Some(&token("bob", None)))
        .await;
    assert_eq!(status, 200);
    let listed = chats["chats"]
        .as_array()
        .expect("chats array")
        .iter()
        .find(|c| c["chat_id"] == chat.as_str())
        .expect("the group is listed")
        .clone();
    assert_eq!(listed["read_seq"], seq, "{listed}");
}

#[tokio::test]
async fn a_large_groups_frames_linger_and_any_other_frame_takes_them_along() {
    // A linger far longer than any delivery here, so the timing below cannot be luck.
    let linger = Duration::from_secs(2);
    let server = TestServer::start_with(|a| {
        a.chat.large_group_members = 2;
        a.gateway.group_linger = linger;
    })
    .await;
    let mut bob = server.connect("bob", "phone").await;
    let group = group_chat(&server, "alice", &["bob", "carol"]).await;
    bob.wait_for(|f| f["type"] == "chat").await;
    let direct = direct_chat(&server, "dave", "bob").await;
    let mut alice = server.connect("alice", "phone").await;
    let mut dave = server.connect("dave", "phone").await;

    // Alone, a group frame waits out the linger.
    let sent_at = std::time::Instant::now();
    alice.send_message(&group, "g1", "hello group").await;
    bob.wait_for(|f| is_msg_of(&group)(f) && f["client_msg_id"] == "g1")
        .await;
    let waited = sent_at.elapsed();
    assert!(
        waited >= linger - Duration::from_millis(200),
        "arrived after {waited:?}"
    );

    // A frame that may not wait (a direct message) is written at once, and the group's
    // lingering frame goes out with it, in the order they were queued.
    alice.send_message(&group, "g2", "again").await;
    let sent_at = std::time::Instant::now();
    dave.send_message(&direct, "d1", "hi bob").await;
    let first = bob
        .wait_for(|f| is_msg_of(&group)(f) || is_msg_of(&direct)(f))
        .await;
    assert_eq!(first["client_msg_id"], "g2", "{first}");
    let second = bob.wait_for(is_msg_of(&direct)).await;
    assert_eq!(second["client_msg_id"], "d1");
    let took = sent_at.elapsed();
    assert!(took < linger / 2, "the direct message waited {took:?}");
}

/// A request held back because the connection owes too many bytes, when all it owes is a
/// large group's lingering frames, is answered once the linger writes them: nothing else
/// may ever come along to wake it.
#[tokio::test]
async fn a_request_held_behind_lingering_frames_is_answered_once_they_are_written() {
    let linger = Duration::from_secs(1);
    let server = TestServer::start_with(|a| {
        a.chat.large_group_members = 2;
        a.gateway.group_linger = linger;
        // Less than a sync's reply estimate: any byte owed holds a sync back.
        a.gateway.limits.reply_budget_bytes = 1024;
    })
    .await;
    let mut bob = server.connect("bob", "phone").await;
    let group = group_chat(&server, "alice", &["bob", "carol"]).await;
    bob.wait_for(|f| f["type"] == "chat").await;
    let mut alice = server.connect("alice", "phone").await;

    alice.send_message(&group, "g1", "hello group").await;
    // The frame is queued on bob's connection, lingering, well before the linger ends.
    tokio::time::sleep(linger / 3).await;
    bob.send_json(json!({"type": "sync", "id": "s1", "cursors": {}, "limit": 10}))
        .await;
    bob.wait_for(|f| is_msg_of(&group)(f) && f["client_msg_id"] == "g1")
        .await;
    let synced = bob
        .try_wait_for(linger * 3, |f| f["type"] == "synced" && f["re"] == "s1")
        .await;
    assert!(synced.is_some(), "the held sync was never answered");
}
