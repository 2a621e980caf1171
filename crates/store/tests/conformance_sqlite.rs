//! The store conformance suite against the embedded SQLite store.

use chat_protocol::ids::ChatId;
use std::sync::Arc;

use chat_protocol::Role;
use chat_store::conformance::group;
use chat_store::{MessageStore, Page, SqliteConfig, SqliteStore};

async fn sqlite_store() -> Option<Arc<dyn MessageStore>> {
    // Each test gets its own directory; it is leaked on purpose so the file outlives the store.
    let dir = tempfile::tempdir().unwrap().keep();
    let store = SqliteStore::open(&SqliteConfig::new(dir.join("chat.db"))).unwrap();
    Some(Arc::new(store))
}

chat_store::conformance_tests!(sqlite_store());

/// The same contract when every commit is followed by a settle: the messages of a chat lie
/// in both tables whenever a test appends more than once.
mod settling_after_every_commit {
    chat_store::conformance_tests!(super::sqlite_store_settling_after(1));
}

async fn sqlite_store_settling_after(rows: usize) -> Option<Arc<dyn MessageStore>> {
    let dir = tempfile::tempdir().unwrap().keep();
    Some(Arc::new(open_settling_after(&dir.join("chat.db"), rows)))
}

fn open_settling_after(path: &std::path::Path, rows: usize) -> SqliteStore {
    let mut config = SqliteConfig::new(path);
    config.settle_after = rows;
    SqliteStore::open(&config).unwrap()
}

/// Where the messages are, read straight from the file: how many are settled, how many
/// are only in a recent table, and how many rows the recent tables hold (copies of settled
/// messages included, while a drained table waits to be emptied).
fn table_rows(path: &std::path::Path) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    // One snapshot for the three counts: a settle step may commit in between otherwise.
    conn.execute_batch("BEGIN").unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get(0)).unwrap();
    let recent = "(SELECT chat_id, seq FROM recent_a UNION ALL SELECT chat_id, seq FROM recent_b)";
    (
        count("SELECT COUNT(*) FROM messages"),
        count(&format!(
            "SELECT COUNT(*) FROM {recent} r WHERE seq > \
             (SELECT COALESCE(MAX(seq), 0) FROM messages m WHERE m.chat_id = r.chat_id)"
        )),
        count(&format!("SELECT COUNT(*) FROM {recent}")),
    )
}

/// A settle step starts each write batch: each write that returns here took one.
async fn let_settle_steps_run(store: &SqliteStore, steps: usize) {
    for _ in 0..steps {
        store.set_last_seen(&"nobody".into(), 0).await.unwrap();
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
    store.create_chat(&group("g", &[])).await.unwrap();
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
    store.create_chat(&group("g", &[])).await.unwrap();
    store.create_chat(&group("h", &[])).await.unwrap();
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
    assert_eq!(version, 7);
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
    let head: i64 = conn
        .query_row(
            "SELECT head_seq FROM chat_heads WHERE chat_id = 'g'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        head, 2,
        "a chat's head is kept from its first append after v7"
    );
    // A binary from before v7 inserts its appends into messages: refused, loudly.
    let old_binary_append = conn.execute(
        "INSERT INTO messages VALUES ('g', 3, 'm3', 'alice', 'c3', 'b', 700)",
        [],
    );
    assert!(
        old_binary_append
            .as_ref()
            .is_err_and(|e| e.to_string().contains("chat_store_v7_writer")),
        "{old_binary_append:?}"
    );
}

/// A chat whose older messages are settled and newer ones recent reads as one log, at
/// every point of a drain: pages in both directions, the dedup window, the chat list, and
/// retries of either half.
#[tokio::test]
async fn sqlite_reads_one_log_across_settled_and_recent_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let store = open_settling_after(&path, 100);
    let chat = group("g", &[("alice", Role::Admin), ("bob", Role::Member)]);
    store.create_chat(&chat).await.unwrap();
    let all: Vec<_> = (1..=199).map(|s| message("g", s, s as i64)).collect();
    // The first hundred fill a table; the next batch starts by switching appends to the
    // other one, the one after copies the hundred out, the next empties the table.
    store.append(all[..100].to_vec()).await.unwrap();
    assert_one_log(&store, &all[..100]).await;
    store.append(all[100..].to_vec()).await.unwrap();
    assert_one_log(&store, &all).await;
    let_settle_steps_run(&store, 1).await;
    assert_eq!(
        table_rows(&path),
        (100, 99, 199),
        "the copies wait in the drained table"
    );
    assert_one_log(&store, &all).await;
    let_settle_steps_run(&store, 1).await;
    assert_eq!(table_rows(&path), (100, 99, 99), "until it is emptied");
    assert_one_log(&store, &all).await;

    // Retries of a settled and of a recent message are idempotent; a different message
    // at either seq is refused.
    store.append(vec![all[49].clone()]).await.unwrap();
    store.append(vec![all[149].clone()]).await.unwrap();
    for seq in [50, 150] {
        let mut other = message("g", seq, 1);
        other.msg_id = "another".into();
        let result = store.append(vec![other]).await;
        assert!(
            matches!(result, Err(chat_store::StoreError::Conflict(_))),
            "seq {seq}: {result:?}"
        );
    }
    store.append(vec![message("g", 200, 200)]).await.unwrap();
    let_settle_steps_run(&store, 3).await;
    assert_eq!(table_rows(&path), (200, 0, 0));
    assert_eq!(
        store
            .messages_after(&ChatId::from("g"), 0, Page::count(1000))
            .await
            .unwrap()
            .len(),
        200
    );
}

/// Every read of chat g agrees with `log` (its messages 1..n, sent by alice to bob).
async fn assert_one_log(store: &SqliteStore, log: &[chat_protocol::Message]) {
    let g = ChatId::from("g");
    let head = log.len() as u64;
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store
            .messages_after(&g, cursor, Page::count(64))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        seen.extend(page);
    }
    assert_eq!(seen, log, "forward pages");
    let before = store
        .messages_before(&g, head - 40, Page::count(80))
        .await
        .unwrap();
    let seqs: Vec<u64> = before.iter().map(|m| m.seq).collect();
    let first = (head - 40).saturating_sub(80).max(1);
    assert_eq!(
        seqs,
        (first..head - 40).collect::<Vec<_>>(),
        "backward page"
    );

    let state = store.sequencer_state(&g, 11).await.unwrap();
    assert_eq!(state.head_seq, head);
    let mut window: Vec<u64> = state.recent.iter().map(|e| e.seq).collect();
    window.sort_unstable();
    assert_eq!(window, (11..=head).collect::<Vec<_>>(), "dedup window");

    // The messages are alice's: bob has them all unread, alice none.
    for (user, unread) in [("alice", 0), ("bob", head)] {
        let list = store
            .chats_of_user(&user.into(), &"d1".into())
            .await
            .unwrap();
        assert_eq!(list[0].unread, unread, "{user}");
        assert_eq!(list[0].last_message.as_ref().unwrap().seq, head);
        assert_eq!(list[0].chat.head_seq, head);
    }
}

/// Two processes on one file (the scaled-out mode on one host) append to the same chat in
/// turn: each one's check sees the other's head, settles move both one's and the other's
/// messages, and a stale writer is refused.
#[tokio::test]
async fn sqlite_stores_sharing_a_file_keep_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let first = open_settling_after(&path, 2);
    let second = open_settling_after(&path, 2);
    first.create_chat(&group("g", &[])).await.unwrap();
    for round in 0..5u64 {
        let writer = if round % 2 == 0 { &first } else { &second };
        let seq = round * 2 + 1;
        writer
            .append(vec![message("g", seq, 1), message("g", seq + 1, 1)])
            .await
            .unwrap();
    }
    // The second store last wrote seq 7-8; a write of its own at seq 9, where the first
    // store's message now is, is refused. (Its settle after 7-8 ran before this job.)
    let mut stale = message("g", 9, 1);
    stale.msg_id = "stale".into();
    assert!(second.append(vec![stale]).await.is_err());
    for store in [&first, &second] {
        let log = store
            .messages_after(&ChatId::from("g"), 0, Page::count(100))
            .await
            .unwrap();
        assert_eq!(
            log.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
    }
    let (settled, unsettled, _) = table_rows(&path);
    assert_eq!(settled + unsettled, 10);
    // Each store drains what the other filled.
    let_settle_steps_run(&first, 3).await;
    let_settle_steps_run(&second, 3).await;
    let_settle_steps_run(&first, 3).await;
    assert_eq!(table_rows(&path), (10, 0, 0));
}

/// Messages left recent when the store closed are counted when it opens again, and the
/// next commit past the threshold settles them.
#[tokio::test]
async fn sqlite_settles_what_an_earlier_run_left_recent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let store = open_settling_after(&path, 1000);
    store.create_chat(&group("g", &[])).await.unwrap();
    let first: Vec<_> = (1..=5).map(|s| message("g", s, 1)).collect();
    store.append(first).await.unwrap();
    store.close();
    drop(store);
    assert_eq!(table_rows(&path), (0, 5, 5));

    let store = open_settling_after(&path, 3);
    store.append(vec![message("g", 6, 1)]).await.unwrap();
    // That append's batch began by switching the full table out (so seq 6 went to the
    // other one); the next two batches copy the earlier run's five and empty the table.
    let_settle_steps_run(&store, 2).await;
    assert_eq!(table_rows(&path), (5, 1, 1));
    let log = store
        .messages_after(&ChatId::from("g"), 0, Page::count(100))
        .await
        .unwrap();
    assert_eq!(log.len(), 6);
}
