//! A SQLite store that can be made to misbehave on cue, and the service set-up the
//! sequencer tests share. Each test crate uses part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_api::{Caller, ChatApi, ChatError, SendOutcome, SendRequest};
use chat_bus::LocalBus;
use chat_presence::LocalPresence;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{Chat, Member, Message, PrivacySettings, Role};
use chat_push::LocalPushQueue;
use chat_service::{ChatConfig, ChatService, Ownership, OwnsEverything};
use chat_store::{
    MessageStore, Page, PushDevice, SequencerState, SqliteConfig, SqliteStore, StoreError,
    StoreResult, UserChatState, Watermarks,
};
use tokio::sync::{Mutex, Notify};

/// SQLite, except that an armed append waits a little (so later batches queue up behind
/// it) and then fails without writing, and another can be held back once written; counts
/// how many appends overlap. Each append passes `writes` on its way to the writer: a test
/// holding it holds the appends back, queued in the order they came.
pub struct FlakyStore {
    inner: SqliteStore,
    pub fail_next: AtomicBool,
    pub appending: AtomicUsize,
    pub most_appending: AtomicUsize,
    /// Sequencer state reads take a while (so overlapping ones can be seen); state and
    /// chat reads are counted.
    pub slow_state_reads: AtomicBool,
    pub state_reads: AtomicUsize,
    pub chat_reads: AtomicUsize,
    pub reading_state: AtomicUsize,
    pub most_reading_state: AtomicUsize,
    /// Taken and let go by each append before it writes (a fair lock: first come, first
    /// served); a test holding it holds every write back.
    pub writes: Mutex<()>,
    /// The next append, once written, waits for `release` before it answers.
    pub hold_after_write: AtomicBool,
    pub release: Notify,
    /// Appends written and waiting for `release`.
    pub held: AtomicUsize,
}

impl FlakyStore {
    pub fn open(dir: &std::path::Path) -> Arc<Self> {
        Arc::new(FlakyStore {
            inner: SqliteStore::open(&SqliteConfig::new(dir.join("chat.db"))).unwrap(),
            fail_next: AtomicBool::new(false),
            appending: AtomicUsize::new(0),
            most_appending: AtomicUsize::new(0),
            slow_state_reads: AtomicBool::new(false),
            state_reads: AtomicUsize::new(0),
            chat_reads: AtomicUsize::new(0),
            reading_state: AtomicUsize::new(0),
            most_reading_state: AtomicUsize::new(0),
            writes: Mutex::new(()),
            hold_after_write: AtomicBool::new(false),
            release: Notify::new(),
            held: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl MessageStore for FlakyStore {
    async fn append(&self, messages: Vec<Message>) -> StoreResult<()> {
        let now = self.appending.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_appending.fetch_max(now, Ordering::SeqCst);
        let result = if self.fail_next.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(StoreError::Unavailable("injected failure".into()))
        } else {
            // A gate, not held while writing: SQLite's writer still takes several appends
            // into one transaction, but while a test holds `writes` they queue in order.
            drop(self.writes.lock().await);
            let written = self.inner.append(messages).await;
            if self.hold_after_write.swap(false, Ordering::SeqCst) {
                self.held.fetch_add(1, Ordering::SeqCst);
                self.release.notified().await;
                self.held.fetch_sub(1, Ordering::SeqCst);
            }
            written
        };
        self.appending.fetch_sub(1, Ordering::SeqCst);
        result
    }
    fn appends_in_flight(&self) -> usize {
        self.inner.appends_in_flight()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn create_chat(&self, chat: &Chat) -> StoreResult<bool> {
        self.inner.create_chat(chat).await
    }
    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<Chat>> {
        self.chat_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_chat(chat_id).await
    }
    async fn add_members(&self, chat_id: &ChatId, members: &[Member]) -> StoreResult<()> {
        self.inner.add_members(chat_id, members).await
    }
    async fn remove_member(&self, chat_id: &ChatId, user_id: &UserId) -> StoreResult<bool> {
        self.inner.remove_member(chat_id, user_id).await
    }
    async fn block(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<()> {
        self.inner.block(blocker, blocked).await
    }
    async fn unblock(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        self.inner.unblock(blocker, blocked).await
    }
    async fn blocks_of(&self, blocker: &UserId) -> StoreResult<Vec<UserId>> {
        self.inner.blocks_of(blocker).await
    }
    async fn set_privacy(&self, user_id: &UserId, settings: PrivacySettings) -> StoreResult<()> {
        self.inner.set_privacy(user_id, settings).await
    }
    async fn last_seen_hidden(&self, user_ids: &[UserId]) -> StoreResult<HashSet<UserId>> {
        self.inner.last_seen_hidden(user_ids).await
    }
    async fn hide_chat(&self, user_id: &UserId, chat_id: &ChatId, seq: u64) -> StoreResult<()> {
        self.inner.hide_chat(user_id, chat_id, seq).await
    }
    async fn hidden_chats(&self, user_id: &UserId) -> StoreResult<HashMap<ChatId, u64>> {
        self.inner.hidden_chats(user_id).await
    }
    async fn is_blocked(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        self.inner.is_blocked(blocker, blocked).await
    }
    async fn blockers_of(&self, blocked: &UserId) -> StoreResult<Vec<UserId>> {
        self.inner.blockers_of(blocked).await
    }
    async fn bump_chat_version(&self, chat_id: &ChatId) -> StoreResult<u64> {
        self.inner.bump_chat_version(chat_id).await
    }
    async fn set_role(&self, chat_id: &ChatId, user_id: &UserId, role: Role) -> StoreResult<()> {
        self.inner.set_role(chat_id, user_id, role).await
    }
    async fn chat_ids_of_user(&self, user_id: &UserId) -> StoreResult<Vec<ChatId>> {
        self.inner.chat_ids_of_user(user_id).await
    }
    async fn chats_of_user(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Vec<UserChatState>> {
        self.inner.chats_of_user(user_id, device_id).await
    }
    async fn contacts_of(&self, user_id: &UserId) -> StoreResult<Vec<UserId>> {
        self.inner.contacts_of(user_id).await
    }
    async fn large_groups_of(
        &self,
        user_id: &UserId,
        more_than: usize,
    ) -> StoreResult<Vec<ChatId>> {
        self.inner.large_groups_of(user_id, more_than).await
    }
    async fn sequencer_state(&self, chat_id: &ChatId, since: i64) -> StoreResult<SequencerState> {
        self.state_reads.fetch_add(1, Ordering::SeqCst);
        let now = self.reading_state.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_reading_state.fetch_max(now, Ordering::SeqCst);
        if self.slow_state_reads.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state = self.inner.sequencer_state(chat_id, since).await;
        self.reading_state.fetch_sub(1, Ordering::SeqCst);
        state
    }
    async fn messages_after(
        &self,
        chat_id: &ChatId,
        after_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>> {
        self.inner.messages_after(chat_id, after_seq, page).await
    }
    async fn messages_before(
        &self,
        chat_id: &ChatId,
        before_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>> {
        self.inner.messages_before(chat_id, before_seq, page).await
    }
    async fn prune_dedup(&self, older_than_ms: i64) -> StoreResult<u64> {
        self.inner.prune_dedup(older_than_ms).await
    }
    async fn advance_delivered(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        self.inner
            .advance_delivered(chat_id, user_id, device_id, seq)
            .await
    }
    async fn advance_read(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        self.inner.advance_read(chat_id, user_id, seq).await
    }
    async fn watermarks(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Watermarks> {
        self.inner.watermarks(chat_id, user_id, device_id).await
    }
    async fn upsert_push_device(&self, device: &PushDevice) -> StoreResult<()> {
        self.inner.upsert_push_device(device).await
    }
    async fn delete_push_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<bool> {
        self.inner.delete_push_device(user_id, device_id).await
    }
    async fn delete_push_token(&self, device: &PushDevice) -> StoreResult<bool> {
        self.inner.delete_push_token(device).await
    }
    async fn push_devices(&self, user_id: &UserId) -> StoreResult<Vec<PushDevice>> {
        self.inner.push_devices(user_id).await
    }
    async fn set_last_seen(&self, user_id: &UserId, ts_ms: i64) -> StoreResult<()> {
        self.inner.set_last_seen(user_id, ts_ms).await
    }
    async fn last_seen(&self, user_ids: &[UserId]) -> StoreResult<HashMap<UserId, i64>> {
        self.inner.last_seen(user_ids).await
    }
}

/// A service over `store` that owns every chat.
pub fn start(store: &Arc<FlakyStore>) -> Arc<ChatService> {
    start_owned_by(store, Arc::new(OwnsEverything))
}

/// A service over `store` that orders what `ownership` says it owns.
pub fn start_owned_by(store: &Arc<FlakyStore>, ownership: Arc<dyn Ownership>) -> Arc<ChatService> {
    let bus = Arc::new(LocalBus::new());
    let presence = Arc::new(LocalPresence::new(store.clone(), bus.clone()));
    ChatService::start(
        ChatConfig::default(),
        store.clone(),
        bus,
        presence,
        Arc::new(LocalPushQueue::new(100)),
        ownership,
    )
}

pub fn caller(user: &str) -> Caller {
    Caller {
        user_id: user.into(),
        device_id: "phone".into(),
        session: None,
    }
}

/// Sends `user`'s message `client_msg_id` to `chat_id` on a task of its own.
pub fn spawn_send(
    chat: &Arc<ChatService>,
    user: &str,
    chat_id: &ChatId,
    client_msg_id: &str,
) -> tokio::task::JoinHandle<Result<SendOutcome, ChatError>> {
    let (chat, user) = (chat.clone(), caller(user));
    let request = SendRequest {
        chat_id: chat_id.clone(),
        client_msg_id: client_msg_id.into(),
        body: "hi".into(),
    };
    tokio::spawn(async move { chat.send(&user, request).await })
}

/// Waits (up to 5 s) until `done` holds; `what` names it if it never does.
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
