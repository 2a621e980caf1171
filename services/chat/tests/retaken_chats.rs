//! A chat service loses a chat's partition and takes it back (a new lease generation)
//! while an append of its old hold is still in flight. The old hold's message is durable
//! but answered `moved`, and its client's retry is deduplicated. The new hold's order
//! state is kept while appends of its own are in flight, so the next send is not given a
//! seq already taken; without such appends it is read again, so the retry finds the
//! message even when the new hold first read the order before it was stored.

mod flaky_store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chat_api::{ChatApi, ChatError, CreateChat};
use chat_protocol::ids::ChatId;
use chat_protocol::ChatKind;
use chat_service::{ChatService, Ownership};
use chat_store::{MessageStore, Page};
use flaky_store::{caller, spawn_send, start_owned_by, wait_until, FlakyStore};

/// Every chat, held under a generation the test moves on (the partition lost and retaken).
struct Retaken(AtomicU64);

impl Ownership for Retaken {
    fn owns(&self, _chat_id: &ChatId) -> Option<u64> {
        Some(self.0.load(Ordering::SeqCst))
    }
}

/// A service over a fresh store, owning every chat under generation 1, and a group chat
/// of alice's where her message "first" is stored at seq 1 (the directory must outlive
/// them).
async fn a_chat_with_one_message() -> (
    tempfile::TempDir,
    Arc<FlakyStore>,
    Arc<Retaken>,
    Arc<ChatService>,
    ChatId,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = FlakyStore::open(dir.path());
    let ownership = Arc::new(Retaken(AtomicU64::new(1)));
    let chat = start_owned_by(&store, ownership.clone());
    let group = CreateChat {
        kind: ChatKind::Group,
        title: Some("g".into()),
        members: vec!["bob".into()],
    };
    let created = chat.create_chat(&caller("alice"), group).await.unwrap();
    let chat_id = created.chat.chat_id;
    let first = spawn_send(&chat, "alice", &chat_id, "first").await;
    assert_eq!(first.unwrap().unwrap().seq, 1);
    (dir, store, ownership, chat, chat_id)
}

/// The chat's log: (seq, client_msg_id) of every message.
async fn log_of(store: &FlakyStore, chat_id: &ChatId) -> Vec<(u64, String)> {
    let stored = store
        .messages_after(chat_id, 0, Page::count(10))
        .await
        .unwrap();
    stored
        .into_iter()
        .map(|m| (m.seq, m.client_msg_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_holds_append_finishing_late_keeps_the_new_holds_order() {
    let (_dir, store, ownership, chat, chat_id) = a_chat_with_one_message().await;
    let send = |client_msg_id: &str| spawn_send(&chat, "alice", &chat_id, client_msg_id);

    // "a" is written under generation 1, its answer held back.
    store.hold_after_write.store(true, Ordering::SeqCst);
    let a = send("a");
    wait_until("a written", || store.held.load(Ordering::SeqCst) == 1).await;

    // Taken back under generation 2: "b" reads the order from the store (seq 2, "a", is
    // there) and waits to be written.
    let writes = store.writes.lock().await;
    ownership.0.store(2, Ordering::SeqCst);
    let b = send("b");
    wait_until("b queued", || store.appending.load(Ordering::SeqCst) == 2).await;

    // "a" finishes under a hold that is gone: moved.
    store.release.notify_one();
    let moved = a.await.unwrap();
    assert!(matches!(moved, Err(ChatError::Moved { .. })), "{moved:?}");

    // "d" follows "b", which is sequenced but not yet written.
    let d = send("d");
    wait_until("d queued", || store.appending.load(Ordering::SeqCst) == 2).await;
    drop(writes);
    assert_eq!(b.await.unwrap().unwrap().seq, 3);
    assert_eq!(d.await.unwrap().unwrap().seq, 4);

    // The client of "a" retries and learns where it was stored.
    let retried = send("a").await.unwrap().unwrap();
    assert_eq!((retried.seq, retried.created), (2, false));
    let log = log_of(&store, &chat_id).await;
    assert_eq!(
        log,
        [(1, "first"), (2, "a"), (3, "b"), (4, "d")].map(|(seq, id)| (seq, id.into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_read_before_an_old_holds_append_landed_is_read_again() {
    let (_dir, store, ownership, chat, chat_id) = a_chat_with_one_message().await;
    let send = |client_msg_id: &str| spawn_send(&chat, "alice", &chat_id, client_msg_id);

    // "a" is sequenced under generation 1 and waits to be written.
    let writes = store.writes.lock().await;
    let a = send("a");
    wait_until("a queued", || store.appending.load(Ordering::SeqCst) == 1).await;

    // Taken back under generation 2: a repeat of "first" reads the order from the store,
    // without "a", and needs no append.
    ownership.0.store(2, Ordering::SeqCst);
    let repeat = send("first").await.unwrap().unwrap();
    assert_eq!((repeat.seq, repeat.created), (1, false));

    // "a" is stored at seq 2, under a hold that is gone: moved.
    drop(writes);
    let moved = a.await.unwrap();
    assert!(matches!(moved, Err(ChatError::Moved { .. })), "{moved:?}");

    // Its client's first retry is recognised.
    let retried = send("a").await.unwrap().unwrap();
    assert_eq!((retried.seq, retried.created), (2, false));
    assert_eq!(send("b").await.unwrap().unwrap().seq, 3);
    let log = log_of(&store, &chat_id).await;
    assert_eq!(
        log,
        [(1, "first"), (2, "a"), (3, "b")].map(|(seq, id)| (seq, id.into()))
    );
}
