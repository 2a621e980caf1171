//! The sequencer keeps several appends in flight. When one fails, the batches sequenced
//! after it must not leave a gap: every send is answered (acked or refused), retries with
//! the same client_msg_id converge, and the log ends up gap-free with each message once.
//! And the state of a batch's cold chats is read several chats at a time, but only for
//! chats the sender belongs to.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_api::{Caller, ChatApi, ChatError, CreateChat, SendOutcome, SendRequest};
use chat_bus::LocalBus;
use chat_presence::LocalPresence;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{Chat, ChatKind, Member, Message, PrivacySettings, Role};
use chat_push::LocalPushQueue;
use chat_service::{ChatConfig, ChatService, OwnsEverything};
use chat_store::{
    MessageStore, Page, PushDevice, SequencerState, SqliteConfig, SqliteStore, StoreError,
    StoreResult, UserChatState, Watermarks,
};

/// SQLite, except that an armed append waits a little (so later batches queue up behind
/// it) and then fails without writing; counts how many appends overlap.
struct FlakyStore {
    inner: SqliteStore,
    fail_next: AtomicBool,
    appending: AtomicUsize,
    most_appending: AtomicUsize,
    /// Sequencer state reads take a while (so overlapping ones can be seen); state and
    /// chat reads are counted.
    slow_state_reads: AtomicBool,
    state_reads: AtomicUsize,
    chat_reads: AtomicUsize,
    reading_state: AtomicUsize,
    most_reading_state: AtomicUsize,
}

impl FlakyStore {
    fn open(dir: &std::path::Path) -> Arc<Self> {
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
            self.inner.append(messages).await
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

fn start(store: &Arc<FlakyStore>) -> Arc<ChatService> {
    let bus = Arc::new(LocalBus::new());
    let presence = Arc::new(LocalPresence::new(store.clone(), bus.clone()));
    ChatService::start(
        ChatConfig::default(),
        store.clone(),
        bus,
        presence,
        Arc::new(LocalPushQueue::new(100)),
        Arc::new(OwnsEverything),
    )
}

fn caller(user: &str) -> Caller {
    Caller {
        user_id: user.into(),
        device_id: "phone".into(),
        session: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_leaves_no_gap_behind_the_batches_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FlakyStore::open(dir.path());
    let chat = start(&store);
    let group = CreateChat {
        kind: ChatKind::Group,
        title: Some("g".into()),
        members: vec!["bob".into()],
    };
    let chat_id = chat
        .create_chat(&caller("alice"), group)
        .await
        .unwrap()
        .chat
        .chat_id;
    let send = |chat: Arc<ChatService>, client_msg_id: String| {
        let request = SendRequest {
            chat_id: chat_id.clone(),
            client_msg_id,
            body: "hi".into(),
        };
        async move { chat.send(&caller("alice"), request).await }
    };
    send(chat.clone(), "first".into()).await.unwrap();

    // The next append fails after a while; sends keep coming meanwhile, in small waves,
    // so several batches are sequenced behind it.
    store.fail_next.store(true, Ordering::SeqCst);
    let mut waves = Vec::new();
    for wave in 0..20 {
        let sends: Vec<_> = (0..10)
            .map(|i| tokio::spawn(send(chat.clone(), format!("w{wave}-{i}"))))
            .collect();
        waves.push(sends);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut refused: Vec<String> = Vec::new();
    for (wave, sends) in waves.into_iter().enumerate() {
        for (i, sent) in sends.into_iter().enumerate() {
            let id = format!("w{wave}-{i}");
            match sent.await.unwrap() {
                Ok(outcome) => {
                    acked.insert(id, outcome.seq);
                }
                Err(_) => refused.push(id),
            }
        }
    }
    assert!(
        store.most_appending.load(Ordering::SeqCst) >= 2,
        "appends were never pipelined"
    );
    assert!(!refused.is_empty(), "the injected failure hit no send");
    // Clients retry what was refused, with the same ids, until it is acked.
    for _ in 0..5 {
        let retry = std::mem::take(&mut refused);
        for id in retry {
            match send(chat.clone(), id.clone()).await {
                Ok(outcome) => {
                    acked.insert(id, outcome.seq);
                }
                Err(_) => refused.push(id),
            }
        }
    }
    assert!(
        refused.is_empty(),
        "still refused after retries: {refused:?}"
    );
    // A repeat of an acked send answers with its seq.
    let (id, seq) = acked.iter().next().map(|(k, v)| (k.clone(), *v)).unwrap();
    assert_eq!(send(chat.clone(), id).await.unwrap().seq, seq);

    let stored = store
        .messages_after(&chat_id, 0, Page::count(1000))
        .await
        .unwrap();
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=201).collect::<Vec<_>>(),
        "gap or duplicate in the log"
    );
    let ids: HashSet<&str> = stored.iter().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(ids.len(), 201, "a message stored twice");
    for m in &stored[1..] {
        assert_eq!(
            acked[&m.client_msg_id], m.seq,
            "{} acked at another seq",
            m.client_msg_id
        );
    }
}

/// Sixteen direct chats of alice's, created through `chat`.
async fn sixteen_chats(chat: &ChatService) -> Vec<ChatId> {
    let mut chats = Vec::new();
    for i in 0..16 {
        let direct = CreateChat {
            kind: ChatKind::Direct,
            title: None,
            members: vec![format!("friend{i}").as_str().into()],
        };
        let created = chat.create_chat(&caller("alice"), direct).await.unwrap();
        chats.push(created.chat.chat_id);
    }
    chats
}

/// A store slow to read order state when asked, a service over it and sixteen of alice's
/// chats (the directory must outlive them).
async fn sixteen_chats_on_a_flaky_store() -> (
    tempfile::TempDir,
    Arc<FlakyStore>,
    Arc<ChatService>,
    Vec<ChatId>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = FlakyStore::open(dir.path());
    let chat = start(&store);
    let chats = sixteen_chats(&chat).await;
    (dir, store, chat, chats)
}

/// Sends `user`'s message `client_msg_id` to `chat_id` on a task of its own.
fn spawn_send(
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

/// One send from `user` to each chat, all at once; their answers, in chat order.
async fn send_to_each(
    chat: &Arc<ChatService>,
    user: &str,
    chats: &[ChatId],
) -> Vec<Result<u64, String>> {
    let sends: Vec<_> = chats
        .iter()
        .map(|chat_id| spawn_send(chat, user, chat_id, "first"))
        .collect();
    let mut answers = Vec::new();
    for sent in sends {
        answers.push(
            sent.await
                .unwrap()
                .map(|o| o.seq)
                .map_err(|e| format!("{e:?}")),
        );
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_chats_of_a_batch_are_read_several_at_a_time() {
    let (_dir, store, chat, chats) = sixteen_chats_on_a_flaky_store().await;
    store.slow_state_reads.store(true, Ordering::SeqCst);

    // The first send may make a batch alone; the rest queue behind its 20 ms read and are
    // sequenced together, their chats all cold.
    let answers = send_to_each(&chat, "alice", &chats).await;
    assert!(answers.iter().all(|a| a == &Ok(1)), "{answers:?}");
    assert_eq!(
        store.state_reads.load(Ordering::SeqCst),
        16,
        "one read a chat"
    );
    let most = store.most_reading_state.load(Ordering::SeqCst);
    assert!(
        most >= 2,
        "state reads never overlapped (at most {most} at once)"
    );
}

/// Sends `user`'s first message to each of `chats` while alice's first send to the cold
/// chat `ahead` waits on its slow state read, so that they queue and make one batch.
async fn behind_a_slow_read(
    chat: &Arc<ChatService>,
    store: &FlakyStore,
    ahead: &ChatId,
    user: &str,
    chats: &[ChatId],
) -> Vec<Result<u64, String>> {
    store.slow_state_reads.store(true, Ordering::SeqCst);
    let first = spawn_send(chat, "alice", ahead, "ahead");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let answers = send_to_each(chat, user, chats).await;
    assert_eq!(first.await.unwrap().unwrap().seq, 1);
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_chats_the_sender_is_not_in_read_no_order_state() {
    let (_dir, store, chat, mut chats) = sixteen_chats_on_a_flaky_store().await;
    let ahead = chats.pop().unwrap();

    let answers = behind_a_slow_read(&chat, &store, &ahead, "mallory", &chats).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_err_and(|e| e.contains("not a member"))),
        "{answers:?}"
    );
    assert_eq!(
        store.state_reads.load(Ordering::SeqCst),
        1,
        "alice's chat only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_chats_that_do_not_exist_read_each_chat_once() {
    let (_dir, store, chat, mut chats) = sixteen_chats_on_a_flaky_store().await;
    let ahead = chats.remove(0);
    let made_up: Vec<ChatId> = (0..16)
        .map(|i| format!("no-such-chat-{i}").as_str().into())
        .collect();
    let before = store.chat_reads.load(Ordering::SeqCst);

    let answers = behind_a_slow_read(&chat, &store, &ahead, "alice", &made_up).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_err_and(|e| e.contains("NotFound"))),
        "{answers:?}"
    );
    // Each made-up chat once (not again when its send is answered), and alice's chat.
    assert_eq!(store.chat_reads.load(Ordering::SeqCst) - before, 17);
}
