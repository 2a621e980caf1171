//! The store conformance suite: the same checks, run against every `MessageStore` backend
//! (see `conformance_tests!`). Each check takes a fresh, empty store.

use std::sync::Arc;

use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{Chat, ChatKind, Member, Message, PushPlatform, Role};

use crate::{MessageStore, Page, PushDevice};

/// Expands to one `#[tokio::test]` per conformance check, each on a store from `$make`
/// (an async expression yielding `Arc<dyn MessageStore>`, or `None` to skip).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            chats_and_members, direct_chat_creation_is_idempotent, append_is_idempotent,
            history_pages_forward_and_backward, pages_are_bounded_in_bytes,
            sequencer_state_reports_head_and_recent_dedup,
            dedup_entries_expire, reads_cross_partition_boundaries, watermarks_only_move_forward,
            concurrent_watermarks_end_at_the_maximum, push_devices_register_and_remove,
            last_seen_keeps_the_latest, concurrent_appends_all_land,
            a_role_changes_in_place, blocks_are_one_way_and_undone,
            chat_versions_count_changes, hidden_chats_keep_their_mark,
            privacy_settings_round_trip);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(store) = $make.await {
                    $crate::conformance::$name(store).await;
                }
            }
        )*
    };
}

fn member(user: &str, role: Role) -> Member {
    Member {
        user_id: user.into(),
        role,
    }
}

/// A group chat with these members, as the suite and the backends' own tests create it.
pub fn group(chat_id: &str, members: &[(&str, Role)]) -> Chat {
    Chat {
        chat_id: chat_id.into(),
        kind: ChatKind::Group,
        title: Some("team".into()),
        members: members.iter().map(|(u, r)| member(u, *r)).collect(),
        created_at: 1_000,
        head_seq: 0,
        version: 0,
    }
}

fn seqs(messages: Vec<Message>) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn message(chat_id: &str, seq: u64, sender: &str, ts: i64) -> Message {
    Message {
        chat_id: chat_id.into(),
        seq,
        msg_id: format!("m-{chat_id}-{seq}"),
        sender_id: sender.into(),
        client_msg_id: format!("c-{seq}"),
        body: format!("body {seq}"),
        ts,
    }
}

pub async fn chats_and_members(store: Arc<dyn MessageStore>) {
    let chat = group("g1", &[("alice", Role::Admin), ("bob", Role::Member)]);
    assert!(store.create_chat(&chat).await.unwrap());
    let loaded = store
        .get_chat(&ChatId::from("g1"))
        .await
        .unwrap()
        .expect("chat exists");
    assert_eq!(loaded.kind, ChatKind::Group);
    assert_eq!(loaded.title.as_deref(), Some("team"));
    assert!(loaded.is_admin("alice"));
    assert!(!loaded.is_admin("bob"));
    assert!(store
        .get_chat(&ChatId::from("nope"))
        .await
        .unwrap()
        .is_none());

    store
        .add_members(
            &ChatId::from("g1"),
            &[member("carol", Role::Member), member("bob", Role::Member)],
        )
        .await
        .unwrap();
    let loaded = store.get_chat(&ChatId::from("g1")).await.unwrap().unwrap();
    assert_eq!(loaded.members.len(), 3);
    assert_eq!(
        store
            .chat_ids_of_user(&UserId::from("carol"))
            .await
            .unwrap(),
        vec!["g1".to_string()]
    );
    let mut contacts = store.contacts_of(&UserId::from("alice")).await.unwrap();
    contacts.sort();
    assert_eq!(contacts, vec!["bob".to_string(), "carol".to_string()]);

    assert_eq!(
        store
            .large_groups_of(&UserId::from("carol"), 2)
            .await
            .unwrap(),
        vec!["g1".to_string()]
    );
    assert!(store
        .large_groups_of(&UserId::from("carol"), 3)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .remove_member(&ChatId::from("g1"), &UserId::from("carol"))
        .await
        .unwrap());
    assert!(!store
        .remove_member(&ChatId::from("g1"), &UserId::from("carol"))
        .await
        .unwrap());
    assert!(store
        .chat_ids_of_user(&UserId::from("carol"))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .contacts_of(&UserId::from("carol"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn direct_chat_creation_is_idempotent(store: Arc<dyn MessageStore>) {
    let chat = Chat {
        chat_id: "d1".into(),
        kind: ChatKind::Direct,
        title: None,
        members: vec![member("alice", Role::Member), member("bob", Role::Member)],
        created_at: 5,
        head_seq: 0,
        version: 0,
    };
    assert!(store.create_chat(&chat).await.unwrap());
    assert!(!store.create_chat(&chat).await.unwrap());
    let loaded = store.get_chat(&ChatId::from("d1")).await.unwrap().unwrap();
    assert_eq!(loaded.members.len(), 2);
    assert_eq!(loaded.title, None);
}

pub async fn append_is_idempotent(store: Arc<dyn MessageStore>) {
    store
        .create_chat(&group("g", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    let batch = vec![message("g", 1, "alice", 10), message("g", 2, "alice", 11)];
    store.append(batch.clone()).await.unwrap();
    // A retried batch changes nothing.
    store.append(batch.clone()).await.unwrap();
    // Another message at a taken seq fails the whole batch, including its new messages.
    let mut conflicting = message("g", 2, "alice", 99);
    conflicting.msg_id = "another-writer".into();
    let result = store
        .append(vec![message("g", 3, "alice", 12), conflicting])
        .await;
    assert!(
        matches!(result, Err(crate::StoreError::Conflict(_))),
        "{result:?}"
    );
    let stored = store
        .messages_after(&ChatId::from("g"), 0, Page::count(100))
        .await
        .unwrap();
    assert_eq!(stored, batch);
    assert_eq!(
        store
            .get_chat(&ChatId::from("g"))
            .await
            .unwrap()
            .unwrap()
            .head_seq,
        2
    );
}

pub async fn history_pages_forward_and_backward(store: Arc<dyn MessageStore>) {
    store
        .create_chat(&group("g", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    let all: Vec<Message> = (1..=250)
        .map(|s| message("g", s, "alice", s as i64))
        .collect();
    store.append(all.clone()).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store
            .messages_after(&ChatId::from("g"), cursor, Page::count(64))
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().unwrap().seq;
        seen.extend(page);
    }
    assert_eq!(seen, all);

    let before = store
        .messages_before(&ChatId::from("g"), 101, Page::count(10))
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (91..=100).collect::<Vec<_>>()
    );
    let newest = store
        .messages_before(&ChatId::from("g"), u64::MAX, Page::count(3))
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![248, 249, 250]
    );
    assert!(store
        .messages_before(&ChatId::from("g"), 1, Page::count(10))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .messages_after(&ChatId::from("other"), 0, Page::count(10))
        .await
        .unwrap()
        .is_empty());
}

pub async fn pages_are_bounded_in_bytes(store: Arc<dyn MessageStore>) {
    store
        .create_chat(&group("g", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    let big: Vec<Message> = (1..=10)
        .map(|seq| Message {
            body: "x".repeat(1000),
            ..message("g", seq, "alice", 1_000)
        })
        .collect();
    store.append(big).await.unwrap();
    let two_fit = 2 * (1000 + crate::MESSAGE_FRAME_ALLOWANCE);
    let forward = store
        .messages_after(&ChatId::from("g"), 0, Page::new(10, two_fit))
        .await
        .unwrap();
    assert_eq!(seqs(forward), vec![1, 2]);
    let backward = store
        .messages_before(&ChatId::from("g"), u64::MAX, Page::new(10, two_fit))
        .await
        .unwrap();
    assert_eq!(
        seqs(backward),
        vec![9, 10],
        "the newest that fit, ascending"
    );
    // A page too small for even one message still makes progress.
    let one = store
        .messages_after(&ChatId::from("g"), 4, Page::new(10, 1))
        .await
        .unwrap();
    assert_eq!(seqs(one), vec![5]);
}

pub async fn sequencer_state_reports_head_and_recent_dedup(store: Arc<dyn MessageStore>) {
    store
        .create_chat(&group("g", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    let empty = store.sequencer_state(&ChatId::from("g"), 0).await.unwrap();
    assert_eq!(empty.head_seq, 0);
    assert!(empty.recent.is_empty());

    store
        .append(vec![
            message("g", 1, "alice", 100),
            message("g", 2, "alice", 200),
        ])
        .await
        .unwrap();
    let state = store
        .sequencer_state(&ChatId::from("g"), 150)
        .await
        .unwrap();
    assert_eq!(state.head_seq, 2);
    assert_eq!(state.recent.len(), 1);
    let entry = &state.recent[0];
    assert_eq!(
        (
            entry.seq,
            entry.client_msg_id.as_str(),
            entry.sender_id.as_str()
        ),
        (2, "c-2", "alice")
    );
    assert_eq!(entry.msg_id, "m-g-2");
}

pub async fn dedup_entries_expire(store: Arc<dyn MessageStore>) {
    store
        .create_chat(&group("g", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    store
        .append(vec![
            message("g", 1, "alice", 100),
            message("g", 2, "alice", 200),
        ])
        .await
        .unwrap();
    // Backends delete old entries by hand (SQLite) or let a TTL do it (Scylla); either way
    // the sequencer only ever asks for the window, and gets only the window.
    let pruned = store.prune_dedup(150).await.unwrap();
    assert!(pruned <= 1, "{pruned}");
    let state = store
        .sequencer_state(&ChatId::from("g"), 150)
        .await
        .unwrap();
    assert_eq!(state.recent.len(), 1);
    assert_eq!(state.recent[0].seq, 2);
    // Messages themselves are never pruned with their dedup entries.
    assert_eq!(
        store
            .messages_after(&ChatId::from("g"), 0, Page::count(10))
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn reads_cross_partition_boundaries(store: Arc<dyn MessageStore>) {
    // Backends that split a chat into buckets are tested with small buckets (the Scylla
    // suite uses 7 messages a bucket), so these ranges straddle several of them.
    store
        .create_chat(&group("g", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    let all: Vec<Message> = (1..=30)
        .map(|s| message("g", s, "alice", s as i64))
        .collect();
    store.append(all.clone()).await.unwrap();
    assert_eq!(
        seqs(
            store
                .messages_after(&ChatId::from("g"), 5, Page::count(4))
                .await
                .unwrap()
        ),
        vec![6, 7, 8, 9]
    );
    assert_eq!(
        seqs(
            store
                .messages_after(&ChatId::from("g"), 6, Page::count(16))
                .await
                .unwrap()
        ),
        (7..=22).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(
            store
                .messages_after(&ChatId::from("g"), 27, Page::count(10))
                .await
                .unwrap()
        ),
        vec![28, 29, 30]
    );
    assert!(store
        .messages_after(&ChatId::from("g"), 30, Page::count(10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        seqs(
            store
                .messages_before(&ChatId::from("g"), 9, Page::count(5))
                .await
                .unwrap()
        ),
        vec![4, 5, 6, 7, 8]
    );
    assert_eq!(
        seqs(
            store
                .messages_before(&ChatId::from("g"), 31, Page::count(3))
                .await
                .unwrap()
        ),
        vec![28, 29, 30]
    );
    assert_eq!(
        seqs(
            store
                .messages_before(&ChatId::from("g"), 3, Page::count(10))
                .await
                .unwrap()
        ),
        vec![1, 2]
    );
    let state = store.sequencer_state(&ChatId::from("g"), 0).await.unwrap();
    assert_eq!(state.head_seq, 30);
    assert_eq!(state.recent.len(), 30);
}

pub async fn watermarks_only_move_forward(store: Arc<dyn MessageStore>) {
    assert_eq!(
        store
            .advance_delivered(
                &ChatId::from("g"),
                &UserId::from("bob"),
                &DeviceId::from("phone"),
                5
            )
            .await
            .unwrap(),
        Some(5)
    );
    // Another device behind the user's watermark moves its own mark but not the user's.
    assert_eq!(
        store
            .advance_delivered(
                &ChatId::from("g"),
                &UserId::from("bob"),
                &DeviceId::from("laptop"),
                3
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .advance_delivered(
                &ChatId::from("g"),
                &UserId::from("bob"),
                &DeviceId::from("phone"),
                4
            )
            .await
            .unwrap(),
        None
    );
    let marks = store
        .watermarks(
            &ChatId::from("g"),
            &UserId::from("bob"),
            &DeviceId::from("laptop"),
        )
        .await
        .unwrap();
    assert_eq!(
        (marks.device_delivered, marks.delivered, marks.read),
        (3, 5, 0)
    );

    assert_eq!(
        store
            .advance_read(&ChatId::from("g"), &UserId::from("bob"), 2)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .advance_read(&ChatId::from("g"), &UserId::from("bob"), 1)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .watermarks(
                &ChatId::from("g"),
                &UserId::from("bob"),
                &DeviceId::from("phone")
            )
            .await
            .unwrap()
            .read,
        2
    );
}

pub async fn concurrent_watermarks_end_at_the_maximum(store: Arc<dyn MessageStore>) {
    let mut tasks = Vec::new();
    for seq in (1..=64u64).rev() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .advance_delivered(
                    &ChatId::from("g"),
                    &UserId::from("bob"),
                    &DeviceId::from("phone"),
                    seq,
                )
                .await
                .unwrap();
            store
                .advance_read(&ChatId::from("g"), &UserId::from("bob"), seq)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let marks = store
        .watermarks(
            &ChatId::from("g"),
            &UserId::from("bob"),
            &DeviceId::from("phone"),
        )
        .await
        .unwrap();
    assert_eq!(
        (marks.device_delivered, marks.delivered, marks.read),
        (64, 64, 64)
    );
}

pub async fn push_devices_register_and_remove(store: Arc<dyn MessageStore>) {
    let device = PushDevice {
        user_id: "bob".into(),
        device_id: "phone".into(),
        platform: PushPlatform::Apns,
        token: "t1".into(),
    };
    store.upsert_push_device(&device).await.unwrap();
    let replaced = PushDevice {
        token: "t2".into(),
        platform: PushPlatform::Fcm,
        ..device.clone()
    };
    store.upsert_push_device(&replaced).await.unwrap();
    assert_eq!(
        store.push_devices(&UserId::from("bob")).await.unwrap(),
        vec![replaced.clone()]
    );
    // A dead token removes only itself: the device registered another one since.
    assert!(!store.delete_push_token(&device).await.unwrap());
    assert_eq!(
        store.push_devices(&UserId::from("bob")).await.unwrap(),
        vec![replaced.clone()]
    );
    assert!(store.delete_push_token(&replaced).await.unwrap());
    store.upsert_push_device(&replaced).await.unwrap();
    assert!(store
        .delete_push_device(&UserId::from("bob"), &DeviceId::from("phone"))
        .await
        .unwrap());
    assert!(!store
        .delete_push_device(&UserId::from("bob"), &DeviceId::from("phone"))
        .await
        .unwrap());
    assert!(store
        .push_devices(&UserId::from("bob"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn last_seen_keeps_the_latest(store: Arc<dyn MessageStore>) {
    store
        .set_last_seen(&UserId::from("bob"), 200)
        .await
        .unwrap();
    store
        .set_last_seen(&UserId::from("bob"), 100)
        .await
        .unwrap();
    let seen = store
        .last_seen(&["bob".into(), "nobody".into()])
        .await
        .unwrap();
    assert_eq!(seen.get("bob"), Some(&200));
    assert!(!seen.contains_key("nobody"));
}

pub async fn concurrent_appends_all_land(store: Arc<dyn MessageStore>) {
    const CHATS: usize = 40;
    const PER_CHAT: u64 = 5;
    let mut tasks = Vec::new();
    for chat in 0..CHATS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let chat_id = format!("g{chat}");
            store
                .create_chat(&group(&chat_id, &[("alice", Role::Admin)]))
                .await
                .unwrap();
            // One writer per chat, in order, as the sequencer writes; chats race each other.
            for seq in 1..=PER_CHAT {
                store
                    .append(vec![message(&chat_id, seq, "alice", 1)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for chat in 0..CHATS {
        let stored = store
            .messages_after(&ChatId::from(format!("g{chat}")), 0, Page::count(1000))
            .await
            .unwrap();
        assert_eq!(
            stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=PER_CHAT).collect::<Vec<_>>()
        );
    }
}

pub async fn a_role_changes_in_place(store: Arc<dyn MessageStore>) {
    let chat = group(
        "g1",
        &[
            ("alice", Role::Admin),
            ("bob", Role::Member),
            ("carol", Role::Member),
        ],
    );
    store.create_chat(&chat).await.unwrap();
    store
        .set_role(&ChatId::from("g1"), &UserId::from("carol"), Role::Admin)
        .await
        .unwrap();
    let loaded = store.get_chat(&ChatId::from("g1")).await.unwrap().unwrap();
    assert!(loaded.is_admin("carol"));
    assert!(!loaded.is_admin("bob"));
    let order: Vec<&str> = loaded.members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(order, ["alice", "bob", "carol"], "the member order is kept");
}

pub async fn blocks_are_one_way_and_undone(store: Arc<dyn MessageStore>) {
    let (alice, bob, carol) = (
        UserId::from("alice"),
        UserId::from("bob"),
        UserId::from("carol"),
    );
    assert!(store.blocks_of(&alice).await.unwrap().is_empty());
    store.block(&alice, &carol).await.unwrap();
    store.block(&alice, &bob).await.unwrap();
    store.block(&alice, &bob).await.unwrap();
    assert_eq!(
        store.blocks_of(&alice).await.unwrap(),
        vec![bob.clone(), carol.clone()]
    );
    assert!(store.blocks_of(&bob).await.unwrap().is_empty(), "one way");
    assert!(store.is_blocked(&alice, &bob).await.unwrap());
    assert!(!store.is_blocked(&bob, &alice).await.unwrap());
    assert_eq!(store.blockers_of(&bob).await.unwrap(), vec![alice.clone()]);
    store.block(&carol, &bob).await.unwrap();
    assert_eq!(
        store.blockers_of(&bob).await.unwrap(),
        vec![alice.clone(), carol.clone()]
    );
    assert!(store.unblock(&carol, &bob).await.unwrap());
    assert!(store.unblock(&alice, &bob).await.unwrap());
    assert!(!store.unblock(&alice, &bob).await.unwrap());
    assert_eq!(store.blocks_of(&alice).await.unwrap(), vec![carol]);
}

pub async fn chat_versions_count_changes(store: Arc<dyn MessageStore>) {
    store
        .create_chat(&group("g1", &[("alice", Role::Admin)]))
        .await
        .unwrap();
    let chat_id = ChatId::from("g1");
    assert_eq!(store.get_chat(&chat_id).await.unwrap().unwrap().version, 0);
    assert_eq!(store.bump_chat_version(&chat_id).await.unwrap(), 1);
    assert_eq!(store.bump_chat_version(&chat_id).await.unwrap(), 2);
    assert_eq!(store.get_chat(&chat_id).await.unwrap().unwrap().version, 2);
    // Concurrent changes each get their own version.
    let bumps = (0..8).map(|_| {
        let (store, chat_id) = (store.clone(), chat_id.clone());
        tokio::spawn(async move { store.bump_chat_version(&chat_id).await.unwrap() })
    });
    let mut got: Vec<u64> = futures_util::future::join_all(bumps)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    got.sort();
    assert_eq!(got, (3..=10).collect::<Vec<u64>>());
}

pub async fn hidden_chats_keep_their_mark(store: Arc<dyn MessageStore>) {
    let alice = UserId::from("alice");
    assert!(store.hidden_chats(&alice).await.unwrap().is_empty());
    store
        .hide_chat(&alice, &ChatId::from("d1"), 4)
        .await
        .unwrap();
    store
        .hide_chat(&alice, &ChatId::from("d2"), 0)
        .await
        .unwrap();
    store
        .hide_chat(&alice, &ChatId::from("d1"), 9)
        .await
        .unwrap();
    let hidden = store.hidden_chats(&alice).await.unwrap();
    assert_eq!(hidden.len(), 2);
    assert_eq!(
        hidden[&ChatId::from("d1")],
        9,
        "hiding again moves the mark"
    );
    assert_eq!(hidden[&ChatId::from("d2")], 0);
    assert!(store
        .hidden_chats(&UserId::from("bob"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn privacy_settings_round_trip(store: Arc<dyn MessageStore>) {
    use chat_protocol::{LastSeenVisibility, PrivacySettings};
    let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
    assert_eq!(
        store.privacy(&alice).await.unwrap(),
        PrivacySettings::default()
    );
    let nobody = PrivacySettings {
        last_seen: LastSeenVisibility::Nobody,
    };
    store.set_privacy(&alice, nobody).await.unwrap();
    assert_eq!(store.privacy(&alice).await.unwrap(), nobody);
    let hidden = store
        .last_seen_hidden(&[alice.clone(), bob.clone()])
        .await
        .unwrap();
    assert_eq!(hidden, [alice.clone()].into_iter().collect());
    store
        .set_privacy(&alice, PrivacySettings::default())
        .await
        .unwrap();
    assert!(store.last_seen_hidden(&[alice]).await.unwrap().is_empty());
}
