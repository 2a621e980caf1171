//! The sequencer: the one writer that gives each message of a chat its seq. It takes sends
//! in arrival order, batches them into one durable append (group commit), and only then
//! publishes the messages, in seq order, and acknowledges them. Per chat it keeps the
//! head seq and the client_msg_ids of the dedup window in memory, loaded from the store
//! the first time the chat is touched, so a restart resumes exactly where the log ends.
//!
//! Appends are pipelined: while one batch is being made durable the next is sequenced and
//! handed to the store (up to `MessageStore::appends_in_flight`), and batches complete
//! strictly in the order they were sequenced, so acks and fan-out keep seq order. A store
//! that allows more than one in flight refuses an append that does not continue its
//! chat's log; so when a batch fails, the ones after it in the same chats fail too rather
//! than leave a gap, and the sequencer waits for every batch in flight before it reloads
//! the failed chats' order from the store.
//!
//! A barrier (`Barrier`) resolves once every batch sequenced before it has finished; a
//! partition is handed to another instance only after one, so no append of the old
//! owner can land after the new owner starts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use chat_api::{ChatError, ChatId, SendOutcome, SendRequest, UserId};
use chat_protocol::{now_ms, Chat, Message};
use chat_store::{MessageStore, SequencerState, StoreResult};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::blocks::BlockCache;
use crate::cache::ChatCache;
use crate::config::ChatConfig;
use crate::errors::store_error;
use crate::fanout::Fanout;
use crate::ownership::Ownership;

/// The most sends one append takes.
const MAX_BATCH: usize = 1024;

/// How often (in batches) remembered client_msg_ids past the dedup window are dropped.
const PRUNE_EVERY_BATCHES: u64 = 4096;

/// Cold chats of one batch whose state is read from the store at once (see `warm`).
const WARM_AT_ONCE: usize = 16;

pub(crate) struct SendCommand {
    /// When the send was queued for the sequencer.
    pub(crate) queued: Instant,
    pub(crate) sender_id: UserId,
    pub(crate) session: Option<Uuid>,
    pub(crate) request: SendRequest,
    pub(crate) reply: oneshot::Sender<Result<SendOutcome, ChatError>>,
}

/// Answered once every batch sequenced before the barrier has finished: true when none
/// of the batches finished meanwhile failed (a failed append's outcome may be unknown).
pub(crate) type Barrier = oneshot::Sender<bool>;

/// How many barriers may wait to be taken by the sequencer.
const BARRIER_QUEUE: usize = 16;

/// The two ways into the sequencer: sends, in order, and barriers.
pub(crate) struct SequencerHandle {
    pub(crate) sends: mpsc::Sender<SendCommand>,
    pub(crate) barriers: mpsc::Sender<Barrier>,
}

/// Durable head seq per chat, as last committed; used to validate watermarks.
#[derive(Default)]
pub(crate) struct Heads(Mutex<HashMap<ChatId, u64, FastHash>>);

impl Heads {
    pub(crate) fn get(&self, chat_id: &ChatId) -> Option<u64> {
        self.0.lock().expect("heads lock").get(chat_id).copied()
    }

    fn raise(&self, chat_id: &ChatId, seq: u64, capacity: usize) {
        let mut heads = self.0.lock().expect("heads lock");
        if heads.len() >= capacity && !heads.contains_key(chat_id) {
            heads.clear();
        }
        let head = heads.entry(chat_id.clone()).or_default();
        *head = (*head).max(seq);
    }
}

/// What the sequencer knows of one chat.
struct ChatOrder {
    /// The ownership generation this state was loaded under.
    generation: u64,
    head_seq: u64,
    /// (sender, client_msg_id) -> what the first send of it became.
    recent: Recent,
    last_used: u64,
}

/// The dedup record of a chat: one entry per message of the window. Kept small and
/// hashed with foldhash (seeded per process, so client ids cannot be chosen to collide):
/// with SipHash and whole `SendOutcome`s, the chats of a busy server outgrowing their
/// maps together stalled the sequencer for tens of ms (BENCHMARKS.md).
type Recent = HashMap<(UserId, String), Remembered, FastHash>;

/// The hasher of the sequencer's maps, all looked up per message: seeded foldhash, several
/// times cheaper than SipHash on 36-byte chat ids.
type FastHash = foldhash::fast::RandomState;

/// What a send became, enough to answer its repeats.
struct Remembered {
    msg_id: Box<str>,
    seq: u64,
    ts: i64,
    /// The batch it went out in; once that batch is no longer in flight the message is
    /// stored (a failed batch takes its chats' entries with it).
    ticket: u64,
}

impl Remembered {
    fn outcome(&self, chat_id: &ChatId, client_msg_id: &str) -> SendOutcome {
        SendOutcome {
            chat_id: chat_id.clone(),
            client_msg_id: client_msg_id.to_owned(),
            msg_id: self.msg_id.to_string(),
            seq: self.seq,
            ts: self.ts,
            created: false,
        }
    }
}

/// The batch ticket of dedup entries read back from the store.
const DURABLE: u64 = 0;

pub(crate) struct Sequencer {
    store: Arc<dyn MessageStore>,
    chats: Arc<ChatCache>,
    blocks: Arc<BlockCache>,
    fanout: Arc<Fanout>,
    heads: Arc<Heads>,
    ownership: Arc<dyn Ownership>,
    dedup_window: Duration,
    capacity: usize,
    orders: HashMap<ChatId, ChatOrder, FastHash>,
    /// Batches handed to the store, oldest first.
    in_flight: VecDeque<Batch>,
    /// Counts batches; also the ticket of the batch being formed.
    tick: u64,
    /// Counts failed batches, so a barrier can tell whether one failed since it was set.
    failures: u64,
}

/// A sequenced batch on its way to the store.
struct Batch {
    ticket: u64,
    taken: Instant,
    pending: Vec<Pending>,
    /// Repeats of this batch's messages, answered with its outcome.
    repeats: Vec<Repeat>,
    touched: HashSet<ChatId, FastHash>,
    append: Pin<Box<dyn Future<Output = StoreResult<()>> + Send>>,
    /// Barriers set while this was the newest batch in flight, with `failures` then.
    barriers: Vec<(Barrier, u64)>,
}

/// What a send turned out to be.
enum Accepted {
    New(Pending),
    /// A repeat of a message in batch `ticket` (or `DURABLE`).
    Repeat(Repeat, u64),
}

/// A message accepted into the current batch, waiting for the append.
struct Pending {
    generation: u64,
    chat: Arc<Chat>,
    message: Message,
    origin: Option<Uuid>,
    reply: oneshot::Sender<Result<SendOutcome, ChatError>>,
}

/// A repeat of a send; answered once the batch holding the original (if any) is durable.
struct Repeat {
    outcome: SendOutcome,
    reply: oneshot::Sender<Result<SendOutcome, ChatError>>,
}

impl Sequencer {
    pub(crate) fn spawn(
        store: Arc<dyn MessageStore>,
        chats: Arc<ChatCache>,
        blocks: Arc<BlockCache>,
        fanout: Arc<Fanout>,
        heads: Arc<Heads>,
        ownership: Arc<dyn Ownership>,
        config: &ChatConfig,
    ) -> SequencerHandle {
        let (sends, rx) = mpsc::channel(config.sequencer_queue.max(1));
        let (barriers, barrier_rx) = mpsc::channel(BARRIER_QUEUE);
        let sequencer = Sequencer {
            store,
            chats,
            blocks,
            fanout,
            heads,
            ownership,
            dedup_window: config.dedup_window,
            capacity: config.sequencer_cached_chats.max(1),
            orders: HashMap::default(),
            in_flight: VecDeque::new(),
            tick: 0,
            failures: 0,
        };
        tokio::spawn(sequencer.run(rx, barrier_rx));
        SequencerHandle { sends, barriers }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<SendCommand>,
        mut barriers: mpsc::Receiver<Barrier>,
    ) {
        let limit = self.store.appends_in_flight().max(1);
        let mut commands = Vec::with_capacity(MAX_BATCH);
        loop {
            let room = self.in_flight.len() < limit;
            let event = tokio::select! {
                biased;
                result = oldest_append(&mut self.in_flight), if !self.in_flight.is_empty() => {
                    Event::Appended(result)
                }
                // Before sends: under steady load a barrier would otherwise wait behind them,
                // and a handover behind it.
                Some(barrier) = barriers.recv() => Event::Barrier(barrier),
                received = rx.recv_many(&mut commands, MAX_BATCH), if room => {
                    Event::Received(received)
                }
            };
            match event {
                Event::Appended(result) => {
                    let batch = self.in_flight.pop_front().expect("an append was in flight");
                    self.finish(batch, result).await;
                }
                Event::Received(0) => break,
                Event::Received(_) => self.sequence(std::mem::take(&mut commands)).await,
                Event::Barrier(barrier) => match self.in_flight.back_mut() {
                    Some(newest) => newest.barriers.push((barrier, self.failures)),
                    None => {
                        let _ = barrier.send(true);
                    }
                },
            }
        }
        while let Some(mut batch) = self.in_flight.pop_front() {
            let result = batch.append.as_mut().await;
            self.finish(batch, result).await;
        }
    }

    /// Gives each send its seq (or recognises it as a repeat) and hands the new messages to
    /// the store as one append.
    async fn sequence(&mut self, commands: Vec<SendCommand>) {
        let taken = Instant::now();
        // Once a batch: how far the sequencer (and the store behind it) lags the sends. The
        // earliest stamp, not the first command's: many tasks stamp and queue at once.
        if let Some(oldest) = commands.iter().map(|c| c.queued).min() {
            metrics::histogram!("chat_send_queue_seconds")
                .record(taken.duration_since(oldest).as_secs_f64());
        }
        self.tick += 1;
        let ticket = self.tick;
        self.evict_if_full();
        if self.tick.is_multiple_of(PRUNE_EVERY_BATCHES) {
            self.prune_expired_dedup();
        }
        let missing = self.warm(&commands).await;
        let mut pending: Vec<Pending> = Vec::new();
        let mut repeats: Vec<Repeat> = Vec::new();
        let mut touched: HashSet<ChatId, FastHash> = HashSet::default();
        for command in commands {
            match self.accept(command, ticket, &missing).await {
                Ok(Accepted::New(p)) => {
                    touched.insert(p.message.chat_id.clone());
                    pending.push(p);
                }
                Ok(Accepted::Repeat(repeat, of)) if of == ticket => repeats.push(repeat),
                Ok(Accepted::Repeat(repeat, of)) => match self.batch_mut(of) {
                    // Its original is not durable yet: answer with that batch.
                    Some(batch) => batch.repeats.push(repeat),
                    None => {
                        let _ = repeat.reply.send(Ok(repeat.outcome));
                    }
                },
                Err((reply, error)) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        if pending.is_empty() {
            for repeat in repeats {
                let _ = repeat.reply.send(Ok(repeat.outcome));
            }
            return;
        }
        let messages: Vec<Message> = pending.iter().map(|p| p.message.clone()).collect();
        let store = self.store.clone();
        let mut append: Pin<Box<dyn Future<Output = StoreResult<()>> + Send>> =
            Box::pin(async move { store.append(messages).await });
        // Polled once now, so the store takes the appends in the order they were sequenced
        // (`MessageStore::appends_in_flight` says why it must).
        let early = futures_util::poll!(append.as_mut());
        let mut batch = Batch {
            ticket,
            taken,
            pending,
            repeats,
            touched,
            append,
            barriers: Vec::new(),
        };
        if let Poll::Ready(result) = early {
            // Done already, but it still completes behind any older batch.
            batch.append = Box::pin(std::future::ready(result));
        }
        self.in_flight.push_back(batch);
    }

    fn batch_mut(&mut self, ticket: u64) -> Option<&mut Batch> {
        self.in_flight.iter_mut().find(|b| b.ticket == ticket)
    }

    /// Acks and publishes a durable batch, or fails it; in sequencing order either way.
    async fn finish(&mut self, batch: Batch, result: StoreResult<()>) {
        let Batch {
            taken,
            pending,
            repeats,
            touched,
            barriers,
            ..
        } = batch;
        if result.is_err() {
            self.failures += 1;
        }
        match result {
            Ok(()) => {
                metrics::counter!("chat_messages_stored_total").increment(pending.len() as u64);
                let mut deliveries = Vec::with_capacity(pending.len());
                for p in pending {
                    // Durable, but acked only if this instance still holds the chat under
                    // the same lease (a partition being handed over still counts); otherwise
                    // the client retries at the new owner, whose dedup state (loaded from
                    // the store) knows this message.
                    if !self.ownership.holds(&p.message.chat_id, p.generation) {
                        self.forget_order(&p.message.chat_id);
                        let _ = p.reply.send(Err(ChatError::moved()));
                        continue;
                    }
                    self.heads
                        .raise(&p.message.chat_id, p.message.seq, self.capacity);
                    self.fanout.message(&p.chat, &p.message, p.origin);
                    let _ = p.reply.send(Ok(outcome_of(&p.message, true)));
                    deliveries.push((p.chat, p.message));
                }
                for repeat in repeats {
                    let _ = repeat.reply.send(Ok(repeat.outcome));
                }
                // From taking the batch to every message durable, published and acked.
                metrics::histogram!("chat_send_fanout_seconds")
                    .record(taken.elapsed().as_secs_f64());
                let fanout = self.fanout.clone();
                tokio::spawn(async move { fanout.push_offline(deliveries).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, batch_size = pending.len(), "append failed; chats will reload their order from the store");
                let error = store_error(e);
                for p in pending {
                    let _ = p.reply.send(Err(error.clone()));
                }
                for repeat in repeats {
                    // The original was in this batch: not durable either.
                    let _ = repeat.reply.send(Err(error.clone()));
                }
                // What this batch assigned is void; batches after it in the same chats
                // fail their contiguity check. Let them all finish, then forget the order
                // of every failed chat: the store's head is the truth again.
                let mut forget = touched;
                while let Some(mut later) = self.in_flight.pop_front() {
                    let result = later.append.as_mut().await;
                    if result.is_err() {
                        forget.extend(later.touched.iter().cloned());
                    }
                    Box::pin(self.finish(later, result)).await;
                }
                for chat_id in &forget {
                    self.orders.remove(chat_id);
                }
            }
        }
        for (barrier, failures_then) in barriers {
            let _ = barrier.send(self.failures == failures_then);
        }
    }

    /// Places one send in the batch `ticket`, or recognises it as a repeat.
    #[allow(clippy::type_complexity)]
    async fn accept(
        &mut self,
        command: SendCommand,
        ticket: u64,
        missing: &HashSet<ChatId, FastHash>,
    ) -> Result<Accepted, (oneshot::Sender<Result<SendOutcome, ChatError>>, ChatError)> {
        let SendCommand {
            queued: _,
            sender_id,
            session,
            request,
            reply,
        } = command;
        let Some(generation) = self.ownership.owns(&request.chat_id) else {
            return Err((reply, ChatError::moved()));
        };
        if missing.contains(&request.chat_id) {
            return Err((reply, ChatError::no_chat()));
        }
        let chat = match self
            .chats
            .get(self.store.as_ref(), &request.chat_id, generation)
            .await
        {
            Ok(Some(chat)) => chat,
            Ok(None) => return Err((reply, ChatError::no_chat())),
            Err(e) => return Err((reply, store_error(e))),
        };
        if chat.member(&sender_id).is_none() {
            return Err((reply, ChatError::not_member()));
        }
        if let Err(e) = self.load_order(&request.chat_id, generation).await {
            return Err((reply, e));
        }
        let order = self
            .orders
            .get_mut(&request.chat_id)
            .expect("order loaded above");
        order.last_used = self.tick;
        let key = (sender_id, request.client_msg_id);
        if let Some(previous) = order.recent.get(&key) {
            metrics::counter!("chat_send_repeats_total").increment(1);
            let outcome = previous.outcome(&request.chat_id, &key.1);
            return Ok(Accepted::Repeat(Repeat { outcome, reply }, previous.ticket));
        }
        // After the repeat check: a message accepted before a block still gets its answer.
        match self
            .blocks
            .blocked(self.store.as_ref(), &chat, generation)
            .await
        {
            Ok(false) => {}
            Ok(true) => return Err((reply, ChatError::forbidden("you cannot message this user"))),
            Err(e) => return Err((reply, store_error(e))),
        }
        let order = self
            .orders
            .get_mut(&request.chat_id)
            .expect("order loaded above");
        order.head_seq += 1;
        let (sender_id, client_msg_id) = key;
        let message = Message {
            chat_id: request.chat_id,
            seq: order.head_seq,
            msg_id: Uuid::now_v7().to_string(),
            sender_id,
            client_msg_id,
            body: request.body,
            ts: now_ms(),
        };
        order.recent.insert(
            (message.sender_id.clone(), message.client_msg_id.clone()),
            Remembered {
                msg_id: message.msg_id.as_str().into(),
                seq: message.seq,
                ts: message.ts,
                ticket,
            },
        );
        Ok(Accepted::New(Pending {
            generation,
            chat,
            message,
            origin: session,
            reply,
        }))
    }

    fn holds_order(&self, chat_id: &ChatId, generation: u64) -> bool {
        self.orders
            .get(chat_id)
            .is_some_and(|o| o.generation == generation)
    }

    /// Forgets the chat's order, to be read again from the store, unless a batch in flight
    /// holds messages of it: a reload would miss them (as in `evict_if_full`). A chat
    /// retaken under a newer hold with appends of its own in flight keeps their seqs; one
    /// whose order was read before an older hold's message was stored reads it again.
    fn forget_order(&mut self, chat_id: &ChatId) {
        if !self.in_flight.iter().any(|b| b.touched.contains(chat_id)) {
            self.orders.remove(chat_id);
        }
    }

    /// Reads, several at a time, what `accept` would otherwise read one chat after another
    /// for the chats of `commands` with no order held: the chat, its block state and
    /// its order state. After a start or a failover every chat is cold at once, and reading
    /// them in turn in this task held the first sends of 100 chats for 30–40 ms (the
    /// latency timeline's first windows). Returns the chats found not to exist, which
    /// `accept` answers without reading them again. Order and block state are read only
    /// where one of the chat's senders in the batch is a member. After a failed read no
    /// more are started (a failing store would otherwise pay each timeout twice): `accept`
    /// meets the failure again and answers it.
    async fn warm(&mut self, commands: &[SendCommand]) -> HashSet<ChatId, FastHash> {
        let mut cold: HashMap<&ChatId, (u64, Vec<&UserId>), FastHash> = HashMap::default();
        for command in commands {
            let chat_id = &command.request.chat_id;
            if let Some((_, senders)) = cold.get_mut(chat_id) {
                if !senders.contains(&&command.sender_id) {
                    senders.push(&command.sender_id);
                }
                continue;
            }
            // One lookup for a warm chat, the common case, before asking who owns it. A
            // chat held under an older generation (taken back after a handover) is rare:
            // `accept` reloads it itself.
            if self.orders.contains_key(chat_id) {
                continue;
            }
            if let Some(generation) = self.ownership.owns(chat_id) {
                cold.insert(chat_id, (generation, vec![&command.sender_id]));
            }
        }
        if cold.len() < 2 {
            return HashSet::default();
        }
        let since = self.dedup_since();
        let failed = Arc::new(AtomicBool::new(false));
        let owned: Vec<(ChatId, u64, Vec<UserId>)> = cold
            .into_iter()
            .map(|(chat_id, (generation, senders))| {
                let senders = senders.into_iter().cloned().collect();
                (chat_id.clone(), generation, senders)
            })
            .collect();
        let warmed: Vec<Warmed> = futures_util::stream::iter(owned)
            .map(|(chat_id, generation, senders)| {
                let (store, chats, blocks, failed) = (
                    self.store.clone(),
                    self.chats.clone(),
                    self.blocks.clone(),
                    failed.clone(),
                );
                async move {
                    let read = async {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(Warmed::Nothing);
                        }
                        let Some(chat) = chats.get(store.as_ref(), &chat_id, generation).await?
                        else {
                            return Ok(Warmed::Missing(chat_id));
                        };
                        if !senders.iter().any(|sender| chat.member(sender).is_some()) {
                            return Ok(Warmed::Nothing);
                        }
                        blocks.blocked(store.as_ref(), &chat, generation).await?;
                        let state = store.sequencer_state(&chat_id, since).await?;
                        Ok(Warmed::Order(chat_id, generation, state))
                    };
                    read.await.unwrap_or_else(|_: chat_store::StoreError| {
                        failed.store(true, Ordering::Relaxed);
                        Warmed::Nothing
                    })
                }
            })
            .buffer_unordered(WARM_AT_ONCE)
            .collect()
            .await;
        let mut missing = HashSet::default();
        for warmed in warmed {
            match warmed {
                Warmed::Order(chat_id, generation, state) => {
                    self.remember_order(chat_id, generation, state)
                }
                Warmed::Missing(chat_id) => {
                    missing.insert(chat_id);
                }
                Warmed::Nothing => {}
            }
        }
        missing
    }

    /// Client_msg_ids older than this (ms) are past the dedup window.
    fn dedup_since(&self) -> i64 {
        now_ms() - self.dedup_window.as_millis() as i64
    }

    /// Loads the chat's order state from the store unless it is held under `generation`.
    async fn load_order(&mut self, chat_id: &ChatId, generation: u64) -> Result<(), ChatError> {
        if self.holds_order(chat_id, generation) {
            return Ok(());
        }
        let state = self
            .store
            .sequencer_state(chat_id, self.dedup_since())
            .await
            .map_err(store_error)?;
        self.remember_order(chat_id.clone(), generation, state);
        Ok(())
    }

    fn remember_order(&mut self, chat_id: ChatId, generation: u64, state: SequencerState) {
        let recent = state
            .recent
            .into_iter()
            .map(|e| {
                let remembered = Remembered {
                    msg_id: e.msg_id.into(),
                    seq: e.seq,
                    ts: e.ts,
                    ticket: DURABLE,
                };
                ((e.sender_id, e.client_msg_id), remembered)
            })
            .collect();
        self.orders.insert(
            chat_id,
            ChatOrder {
                generation,
                head_seq: state.head_seq,
                recent,
                last_used: self.tick,
            },
        );
    }

    /// Keeps memory bounded: when full, forget the least recently used half (they reload
    /// from the store).
    fn evict_if_full(&mut self) {
        if self.orders.len() < self.capacity {
            return;
        }
        let mut ticks: Vec<u64> = self.orders.values().map(|o| o.last_used).collect();
        ticks.sort_unstable();
        // Never a chat with messages in flight: reloaded now, its head would miss them.
        let oldest_in_flight = self.in_flight.front().map_or(u64::MAX, |b| b.ticket);
        let cutoff = ticks[ticks.len() / 2].min(oldest_in_flight.saturating_sub(1));
        self.orders.retain(|_, o| o.last_used > cutoff);
    }

    /// Forgets client_msg_ids older than the dedup window, so busy chats stay bounded too.
    fn prune_expired_dedup(&mut self) {
        let oldest = self.dedup_since();
        for order in self.orders.values_mut() {
            order.recent.retain(|_, remembered| remembered.ts >= oldest);
        }
    }
}

/// What `Sequencer::warm` learned about one cold chat.
enum Warmed {
    Order(ChatId, u64, SequencerState),
    Missing(ChatId),
    /// Nothing to keep: no sender of the batch is a member, or a read failed or was skipped.
    Nothing,
}

enum Event {
    Appended(StoreResult<()>),
    Received(usize),
    Barrier(Barrier),
}

/// Resolves when the oldest batch in flight is durable (or failed).
async fn oldest_append(in_flight: &mut VecDeque<Batch>) -> StoreResult<()> {
    let batch = in_flight.front_mut().expect("an append is in flight");
    batch.append.as_mut().await
}

fn outcome_of(message: &Message, created: bool) -> SendOutcome {
    SendOutcome {
        chat_id: message.chat_id.clone(),
        client_msg_id: message.client_msg_id.clone(),
        msg_id: message.msg_id.clone(),
        seq: message.seq,
        ts: message.ts,
        created,
    }
}
