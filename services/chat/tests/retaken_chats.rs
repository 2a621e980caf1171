//! A chat service loses a chat's partition and takes it back (a new lease generation)
//! while an append of its old hold is still in flight. The old hold's message is durable
//! but answered `moved` (its client retries and is deduplicated); the order state of the
//! new hold is kept, so the next send is not given a seq already in flight.

mod flaky_store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chat_api::{ChatApi, ChatError, CreateChat};
use chat_protocol::ids::ChatId;
use chat_protocol::ChatKind;
use chat_service::Ownership;
use chat_store::{MessageStore, Page};
use flaky_store::{caller, spawn_send, start_owned_by, wait_until, FlakyStore};

/// Every chat, held under a generation the test moves on (the partition lost and retaken).
struct Retaken(AtomicU64);

impl Ownership for Retaken {
    fn owns(&self, _chat_id: &ChatId) -> Option<u64> {
        Some(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_holds_append_finishing_late_keeps_the_new_holds_order() {
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
    let send = |client_msg_id: &str| spawn_send(&chat, "alice", &chat_id, client_msg_id);
    assert_eq!(send("first").await.unwrap().unwrap().seq, 1);

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
    let stored = store
        .messages_after(&chat_id, 0, Page::count(10))
        .await
        .unwrap();
    let log: Vec<(u64, &str)> = stored
        .iter()
        .map(|m| (m.seq, m.client_msg_id.as_str()))
        .collect();
    assert_eq!(log, [(1, "first"), (2, "a"), (3, "b"), (4, "d")]);
}
