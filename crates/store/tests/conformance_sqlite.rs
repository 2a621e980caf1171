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

fn group_chat(chat_id: &str) -> chat_protocol::Chat {
    chat_protocol::Chat {
        chat_id: chat_id.into(),
        kind: chat_protocol::ChatKind::Group,
        title: None,
        members: vec![],
        created_at: 0,
        head_seq: 0,
        version: 0,
    }
}

fn message(chat_id: &str, seq: u64, ts: i64) -> chat_protocol::Message {
    chat_protocol::Message {
        chat_id: chat_id.into(),
        seq,
        msg_id: format!("m{seq}"),
        sender_id: "alice".into(),
        client_msg_id: format!("c{seq}"),
        body: "b".into(),
        ts,
    }
}

/// SQLite keeps no separate dedup table: the messages are the record and the window is
/// applied when they are read, so pruning has nothing to delete and loses nothing.
#[tokio::test]
async fn sqlite_reads_the_dedup_window_from_the_messages() {
    let store = sqlite_store().await.unwrap();
    store.create_chat(&group_chat("g")).await.unwrap();
    store
        .append(vec![
            message("g", 1, 100),
            message("g", 2, 200),
            message("g", 3, 300),
        ])
        .await
        .unwrap();
    assert_eq!(store.prune_dedup(250).await.unwrap(), 0);
    let state = store
        .sequencer_state(&ChatId::from("g"), 150)
        .await
        .unwrap();
    assert_eq!(state.head_seq, 3);
    let mut recent: Vec<u64> = state.recent.iter().map(|e| e.seq).collect();
    recent.sort_unstable();
    assert_eq!(recent, vec![2, 3]);
    let all = store.sequencer_state(&ChatId::from("g"), 0).await.unwrap();
    assert_eq!(all.recent.len(), 3);
}

/// The sequencer keeps several appends in flight on SQLite; that is safe because an
/// append that does not continue its chat's log is refused whole.
#[tokio::test]
async fn sqlite_refuses_an_append_that_would_leave_a_gap() {
    let store = sqlite_store().await.unwrap();
    assert!(store.appends_in_flight() > 1);
    store.create_chat(&group_chat("g")).await.unwrap();
    store.create_chat(&group_chat("h")).await.unwrap();
    store.append(vec![message("g", 1, 1)]).await.unwrap();
    // Seq 2 of g was in a batch that failed; seq 3 must not land after it, nor the
    // message of h that shares its batch.
    let result = store
        .append(vec![message("h", 1, 1), message("g", 3, 1)])
        .await;
    assert!(
        matches!(result, Err(chat_store::StoreError::Conflict(_))),
        "{result:?}"
    );
    for (chat, head) in [("g", 1), ("h", 0)] {
        let state = store.sequencer_state(&ChatId::from(chat), 0).await.unwrap();
        assert_eq!(state.head_seq, head, "{chat}");
    }
    // The retry, in order, goes through.
    store
        .append(vec![
            message("g", 2, 1),
            message("g", 3, 1),
            message("h", 1, 1),
        ])
        .await
        .unwrap();
}

/// A database written by schema v1 (with its dedup table) opens, loses the table, and
/// keeps every message and the dedup answers they give.
#[tokio::test]
async fn sqlite_migrates_a_v1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE chats (chat_id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT,
                 created_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE messages (chat_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 msg_id TEXT NOT NULL, sender_id TEXT NOT NULL, client_msg_id TEXT NOT NULL,
                 body TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (chat_id, seq)) WITHOUT ROWID;
             CREATE TABLE dedup (chat_id TEXT NOT NULL, sender_id TEXT NOT NULL,
                 client_msg_id TEXT NOT NULL, seq INTEGER NOT NULL, msg_id TEXT NOT NULL,
                 ts INTEGER NOT NULL, PRIMARY KEY (chat_id, sender_id, client_msg_id)) WITHOUT ROWID;
             CREATE INDEX dedup_by_ts ON dedup (ts);
             INSERT INTO chats VALUES ('g', 'group', NULL, 0);
             INSERT INTO messages VALUES ('g', 1, 'm1', 'alice', 'c1', 'b', 500);
             INSERT INTO dedup VALUES ('g', 'alice', 'c1', 1, 'm1', 500);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&SqliteConfig::new(&path)).unwrap();
    let state = store.sequencer_state(&ChatId::from("g"), 0).await.unwrap();
    assert_eq!(state.head_seq, 1);
    assert_eq!(state.recent[0].client_msg_id, "c1");
    store.append(vec![message("g", 2, 600)]).await.unwrap();
    store.close();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 6);
    let blocks_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'blocks'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(blocks_table, 1, "v3's blocks table came along");
    let versions_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'chat_versions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(versions_table, 1, "and v4's chat versions");
    let dedup_tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('dedup', 'dedup_by_ts')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dedup_tables, 0);
}
