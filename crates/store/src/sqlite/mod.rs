//! The embedded store: SQLite in WAL mode, one group-commit writer thread and a pool of
//! readers. Several processes on one host may open the same file.

mod busy;
mod checkpoint;
mod files;
mod pool;
mod queries;
mod settle;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{now_ms, Chat, LastSeenVisibility, Member, Message, PrivacySettings, Role};
use rusqlite::Connection;

use crate::error::{StoreError, StoreResult};
use crate::types::{Page, PushDevice, SequencerState, UserChatState, Watermarks};
use crate::MessageStore;
use checkpoint::{Cadence, Checkpointer};
use pool::ReadPool;
use settle::Settler;
use writer::Writer;

const SCHEMA_VERSION: i64 = 7;
/// The v7 tables, as schema.sql has them between its v7 markers (`chat_heads` starts
/// empty: a chat's head falls back to its newest settled message).
fn v7_tables() -> &'static str {
    let schema = include_str!("schema.sql");
    let from = schema
        .find("-- Messages appended since")
        .expect("schema.sql marks where the v7 tables start");
    let to = schema
        .find("-- End of the v7 tables.")
        .expect("schema.sql marks where the v7 tables end");
    &schema[from..to]
}
/// The v6 table, as in schema.sql.
const PRIVACY_TABLE: &str = "CREATE TABLE IF NOT EXISTS privacy (user_id TEXT PRIMARY KEY, \
    last_seen TEXT NOT NULL) WITHOUT ROWID;";
/// The v5 table, as in schema.sql.
const HIDDEN_CHATS_TABLE: &str = "CREATE TABLE IF NOT EXISTS hidden_chats (user_id TEXT NOT \
    NULL, chat_id TEXT NOT NULL, hidden_seq INTEGER NOT NULL, PRIMARY KEY (user_id, chat_id)) \
    WITHOUT ROWID;";
/// The v4 table, as in schema.sql.
const CHAT_VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS chat_versions (chat_id TEXT \
    PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;";
/// The v3 table, as in schema.sql.
const BLOCKS_TABLE: &str = "CREATE TABLE IF NOT EXISTS blocks (blocker TEXT NOT NULL, \
    blocked TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (blocker, blocked)) \
    WITHOUT ROWID; CREATE INDEX IF NOT EXISTS blocks_by_blocked ON blocks (blocked, blocker);";
/// Page cache of the write connection.
const WRITER_CACHE_KIB: u64 = 64 * 1024;
/// Memory-mapped reads, for the writer and the readers.
pub(crate) const MMAP_BYTES: i64 = 1 << 30;
/// Bytes of WAL file kept after it rewinds (the rest is truncated).
const WAL_KEPT_BYTES: i64 = 64 << 20;
/// Appends the sequencer may have queued for the writer while one commits: enough that
/// the writer always has the next batch ready, few enough that a failed batch wastes
/// little (the ones after it fail their contiguity check and are retried by clients).
const APPENDS_IN_FLIGHT: usize = 4;

/// How hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync the WAL on every commit: an acked message survives power loss. The default.
    #[default]
    Full,
    /// fsync only at checkpoints: survives a process crash, not power loss.
    Normal,
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// Reads running at once (and read connections kept open); more wait their turn.
    pub read_concurrency: usize,
    /// Write jobs waiting for the writer thread before writers wait for room.
    pub write_queue: usize,
    /// Appended messages kept in the recent table before the writer settles them into
    /// the per-chat one: more makes appends cheaper and reads of recent messages dearer.
    pub settle_after: usize,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            synchronous: Synchronous::Full,
            read_concurrency: 8,
            write_queue: 16_384,
            settle_after: 1024,
        }
    }
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<Arc<Writer>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    reads: Arc<ReadPool>,
    settler: Settler,
}

impl SqliteStore {
    /// Opens (creating if needed) the database, applies the schema and starts the writer.
    pub fn open(config: &SqliteConfig) -> StoreResult<Self> {
        files::prepare(&config.path)?;
        let conn = Connection::open(&config.path)?;
        busy::wait_briefly(&conn)?;
        // Switching to WAL takes the database exclusively and does not wait on the busy
        // handler: processes opening a fresh database together retry it.
        while_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        let sync = match config.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        // Appends land in many chats' B-tree pages at once: keep the hot ones in memory
        // (the default cache is 2 MiB) and read through mmap instead of a syscall per
        // page. The checkpointer thread, not the commit, copies the WAL back.
        conn.pragma_update(None, "cache_size", -(WRITER_CACHE_KIB as i64))?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Once rewound, a WAL that grew under a burst is cut back to this size.
        conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
        // Every write job runs in a savepoint; keep its statement journal in memory rather
        // than in a temporary file written and closed per job.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.set_prepared_statement_cache_capacity(64);
        settle::ready_writer(&conn)?;
        migrate(&conn)?;
        let settler = Settler::new(config.settle_after);
        let checkpoint_wanted = Arc::new(AtomicBool::new(false));
        let writer = Writer::start(
            conn,
            config.write_queue,
            checkpoint_wanted.clone(),
            settler.clone(),
        )
        .map_err(|e| StoreError::Internal(format!("start writer thread: {e}")))?;
        let checkpointer =
            Checkpointer::start(&config.path, checkpoint_wanted, Cadence::default())?
                .map_err(|e| StoreError::Internal(format!("start checkpoint thread: {e}")))?;
        Ok(SqliteStore {
            path: config.path.clone(),
            writer: Mutex::new(Some(Arc::new(writer))),
            checkpointer: Mutex::new(Some(checkpointer)),
            reads: Arc::new(ReadPool::new(config.path.clone(), config.read_concurrency)),
            settler,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> StoreResult<Arc<Writer>> {
        self.writer
            .lock()
            .expect("writer lock")
            .clone()
            .ok_or(StoreError::Closed)
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.writer()?.write(f).await
    }

    /// Finishes queued writes and stops the writer; later writes fail with `Closed`.
    fn shut_down_writer(&self) {
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer {
            // Joining blocks; the last Arc holder (possibly an in-flight write) drops it
            // otherwise, which joins there instead.
            if let Ok(mut writer) = Arc::try_unwrap(writer) {
                writer.shutdown();
            }
        }
    }
}

/// Applies the schema, or the steps from an older one, once: the version is read inside
/// the write transaction, so of processes starting together one migrates and the others
/// find it done.
fn migrate(conn: &Connection) -> StoreResult<()> {
    while_busy(|| conn.execute_batch("BEGIN IMMEDIATE"))?;
    let migrated = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Internal(format!(
                "database schema v{version} is newer than this binary understands (v{SCHEMA_VERSION})"
            )));
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let steps = if version == 0 {
            include_str!("schema.sql").to_owned()
        } else {
            let mut steps = String::new();
            if version < 2 {
                // v1 -> v2: the dedup table duplicated what the messages hold; it is read
                // from them now, and appends write one B-tree instead of three.
                steps.push_str("DROP INDEX IF EXISTS dedup_by_ts; DROP TABLE IF EXISTS dedup;");
            }
            if version < 3 {
                // v2 -> v3: blocks.
                steps.push_str(BLOCKS_TABLE);
            }
            if version < 4 {
                // v3 -> v4: chat versions.
                steps.push_str(CHAT_VERSIONS_TABLE);
            }
            if version < 5 {
                // v4 -> v5: hidden chats.
                steps.push_str(HIDDEN_CHATS_TABLE);
            }
            if version < 6 {
                // v5 -> v6: privacy settings.
                steps.push_str(PRIVACY_TABLE);
            }
            if version < 7 {
                // v6 -> v7: appends go to the recent tables; chat heads are kept.
                steps.push_str(v7_tables());
            }
            steps
        };
        conn.execute_batch(&format!("{steps} PRAGMA user_version = {SCHEMA_VERSION};"))?;
        Ok(())
    })();
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    migrated
}

/// Runs `op` again while the database is busy or locked (another process holds it for a
/// moment), for at most ten seconds.
fn while_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> StoreResult<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    fn close(&self) {
        self.shut_down_writer();
        self.checkpointer.lock().expect("checkpointer lock").take();
    }

    /// One writer at a time, each append checked against the head inside its transaction.
    fn appends_fenced(&self) -> bool {
        true
    }

    async fn ping(&self) -> StoreResult<()> {
        self.writer()?;
        self.reads
            .read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn create_chat(&self, chat: &Chat) -> StoreResult<bool> {
        let chat = chat.clone();
        self.write(move |c| queries::insert_chat(c, &chat)).await
    }

    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<Chat>> {
        let chat_id = chat_id.to_owned();
        self.reads
            .read(move |c| queries::select_chat(c, &chat_id))
            .await
    }

    async fn add_members(&self, chat_id: &ChatId, members: &[Member]) -> StoreResult<()> {
        let (chat_id, members) = (chat_id.to_owned(), members.to_vec());
        self.write(move |c| queries::upsert_members(c, &chat_id, &members, now_ms()))
            .await
    }

    async fn remove_member(&self, chat_id: &ChatId, user_id: &UserId) -> StoreResult<bool> {
        let (chat_id, user_id) = (chat_id.to_owned(), user_id.to_owned());
        self.write(move |c| queries::delete_member(c, &chat_id, &user_id))
            .await
    }

    async fn bump_chat_version(&self, chat_id: &ChatId) -> StoreResult<u64> {
        let chat_id = chat_id.to_owned();
        self.write(move |c| queries::bump_chat_version(c, &chat_id))
            .await
    }

    async fn set_role(&self, chat_id: &ChatId, user_id: &UserId, role: Role) -> StoreResult<()> {
        let (chat_id, user_id) = (chat_id.to_owned(), user_id.to_owned());
        self.write(move |c| queries::set_role(c, &chat_id, &user_id, role.as_str()))
            .await
    }

    async fn chat_ids_of_user(&self, user_id: &UserId) -> StoreResult<Vec<ChatId>> {
        let user_id = user_id.to_owned();
        self.reads
            .read(move |c| queries::chat_ids_of_user(c, &user_id))
            .await
    }

    async fn chats_of_user(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Vec<UserChatState>> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.reads
            .read(move |c| queries::chats_of_user(c, &user_id, &device_id))
            .await
    }

    async fn large_groups_of(
        &self,
        user_id: &UserId,
        more_than: usize,
    ) -> StoreResult<Vec<ChatId>> {
        let user_id = user_id.to_owned();
        self.reads
            .read(move |c| queries::large_groups_of(c, &user_id, more_than))
            .await
    }

    async fn contacts_of(&self, user_id: &UserId) -> StoreResult<Vec<UserId>> {
        let user_id = user_id.to_owned();
        self.reads
            .read(move |c| queries::contacts_of(c, &user_id))
            .await
    }

    async fn append(&self, messages: Vec<Message>) -> StoreResult<()> {
        let started = std::time::Instant::now();
        let result = match self.writer() {
            Ok(writer) => {
                let messages = Arc::new(messages);
                let checked = messages.clone();
                let settler = self.settler.clone();
                writer
                    .write_checked(
                        move |c| queries::check_append(c, &checked),
                        move |c, plan| {
                            settler.appended(queries::insert_checked(c, &messages, plan)?);
                            Ok(())
                        },
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        metrics::histogram!("chat_store_append_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    fn appends_in_flight(&self) -> usize {
        APPENDS_IN_FLIGHT
    }

    async fn sequencer_state(
        &self,
        chat_id: &ChatId,
        dedup_since_ms: i64,
    ) -> StoreResult<SequencerState> {
        let chat_id = chat_id.to_owned();
        self.reads
            .read(move |c| queries::sequencer_state(c, &chat_id, dedup_since_ms))
            .await
    }

    async fn messages_after(
        &self,
        chat_id: &ChatId,
        after_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>> {
        let chat_id = chat_id.to_owned();
        self.reads
            .read(move |c| queries::messages_after(c, &chat_id, after_seq, page))
            .await
    }

    async fn messages_before(
        &self,
        chat_id: &ChatId,
        before_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>> {
        let chat_id = chat_id.to_owned();
        self.reads
            .read(move |c| queries::messages_before(c, &chat_id, before_seq, page))
            .await
    }

    /// Nothing to prune: the messages are the dedup record, and the window is applied
    /// when they are read (`sequencer_state`).
    async fn prune_dedup(&self, _older_than_ms: i64) -> StoreResult<u64> {
        Ok(0)
    }

    async fn advance_delivered(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        let (chat_id, user_id, device_id) =
            (chat_id.to_owned(), user_id.to_owned(), device_id.to_owned());
        self.write(move |c| queries::advance_delivered(c, &chat_id, &user_id, &device_id, seq))
            .await
    }

    async fn advance_read(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        let (chat_id, user_id) = (chat_id.to_owned(), user_id.to_owned());
        self.write(move |c| queries::advance_read(c, &chat_id, &user_id, seq))
            .await
    }

    async fn watermarks(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Watermarks> {
        let (chat_id, user_id, device_id) =
            (chat_id.to_owned(), user_id.to_owned(), device_id.to_owned());
        self.reads
            .read(move |c| queries::select_watermarks(c, &chat_id, &user_id, &device_id))
            .await
    }

    async fn upsert_push_device(&self, device: &PushDevice) -> StoreResult<()> {
        let device = device.clone();
        self.write(move |c| queries::upsert_push_device(c, &device, now_ms()))
            .await
    }

    async fn delete_push_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<bool> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.write(move |c| queries::delete_push_device(c, &user_id, &device_id))
            .await
    }

    async fn delete_push_token(&self, device: &PushDevice) -> StoreResult<bool> {
        let device = device.clone();
        self.write(move |c| queries::delete_push_token(c, &device))
            .await
    }

    async fn push_devices(&self, user_id: &UserId) -> StoreResult<Vec<PushDevice>> {
        let user_id = user_id.to_owned();
        self.reads
            .read(move |c| queries::push_devices(c, &user_id))
            .await
    }

    async fn set_last_seen(&self, user_id: &UserId, ts_ms: i64) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        self.write(move |c| queries::set_last_seen(c, &user_id, ts_ms))
            .await
    }

    async fn last_seen(&self, user_ids: &[UserId]) -> StoreResult<HashMap<UserId, i64>> {
        let user_ids = user_ids.to_vec();
        self.reads
            .read(move |c| queries::last_seen(c, &user_ids))
            .await
    }

    async fn block(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<()> {
        let (blocker, blocked) = (blocker.to_owned(), blocked.to_owned());
        self.write(move |c| queries::block(c, &blocker, &blocked, now_ms()))
            .await
    }

    async fn unblock(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        let (blocker, blocked) = (blocker.to_owned(), blocked.to_owned());
        self.write(move |c| queries::unblock(c, &blocker, &blocked))
            .await
    }

    async fn blocks_of(&self, blocker: &UserId) -> StoreResult<Vec<UserId>> {
        let blocker = blocker.to_owned();
        self.reads
            .read(move |c| queries::blocks_of(c, &blocker))
            .await
    }

    async fn set_privacy(&self, user_id: &UserId, settings: PrivacySettings) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        let last_seen = match settings.last_seen {
            LastSeenVisibility::Contacts => "contacts",
            LastSeenVisibility::Nobody => "nobody",
        };
        self.write(move |c| queries::set_privacy(c, &user_id, last_seen))
            .await
    }

    async fn last_seen_hidden(&self, user_ids: &[UserId]) -> StoreResult<HashSet<UserId>> {
        let user_ids = user_ids.to_vec();
        self.reads
            .read(move |c| queries::last_seen_hidden(c, &user_ids))
            .await
    }

    async fn hide_chat(&self, user_id: &UserId, chat_id: &ChatId, seq: u64) -> StoreResult<()> {
        let (user_id, chat_id) = (user_id.to_owned(), chat_id.to_owned());
        self.write(move |c| queries::hide_chat(c, &user_id, &chat_id, seq))
            .await
    }

    async fn hidden_chats(&self, user_id: &UserId) -> StoreResult<HashMap<ChatId, u64>> {
        let user_id = user_id.to_owned();
        self.reads
            .read(move |c| queries::hidden_chats(c, &user_id))
            .await
    }

    async fn is_blocked(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        let (blocker, blocked) = (blocker.to_owned(), blocked.to_owned());
        self.reads
            .read(move |c| queries::is_blocked(c, &blocker, &blocked))
            .await
    }

    async fn blockers_of(&self, blocked: &UserId) -> StoreResult<Vec<UserId>> {
        let blocked = blocked.to_owned();
        self.reads
            .read(move |c| queries::blockers_of(c, &blocked))
            .await
    }
}

impl std::str::FromStr for Synchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(format!("unknown synchronous mode `{other}` (full|normal)")),
        }
    }
}
