//! The store conformance suite against the embedded SQLite store.

use chat_protocol::ids::ChatId;
use std::sync::Arc;

use chat_store::{MessageStore, SqliteConfig, SqliteStore};

async fn sqlite_store() -> Option<Arc<dyn MessageStore>> {
    // Each test gets its own directory; it is leaked on purpose so the file outlives the store.
    let dir = tempfile::tempdir().unwrap().keep();
    let store = SqliteStore::open(&SqliteConfig::new(dir.join("chat.db"))).unwrap();
    Some(Arc::new(store))
}

chat_store::conformance_tests!(sqlite_store());

/// SQLite deletes expired dedup entries by hand (Scylla lets a TTL do it).
#[tokio::test]
async fn sqlite_prunes_dedup_entries_by_age() {
    let store = sqlite_store().await.unwrap();
    let chat = chat_protocol::Chat {
        chat_id: "g".into(),
        kind: chat_protocol::ChatKind::Group,
        title: None,
        members: vec![],
        created_at: 0,
        head_seq: 0,
    };
    store.create_chat(&chat).await.unwrap();
    let message = |seq: u64, ts: i64| chat_protocol::Message {
        chat_id: "g".into(),
        seq,
        msg_id: format!("m{seq}"),
        sender_id: "alice".into(),
        client_msg_id: format!("c{seq}"),
        body: "b".into(),
        ts,
    };
    store
        .append(vec![message(1, 100), message(2, 200)])
        .await
        .unwrap();
    assert_eq!(store.prune_dedup(150).await.unwrap(), 1);
    assert_eq!(
        store
            .sequencer_state(&ChatId::from("g"), 0)
            .await
            .unwrap()
            .recent
            .len(),
        1
    );
}
