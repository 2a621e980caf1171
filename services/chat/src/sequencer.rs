//! The sequencer: the one writer that gives each message of a chat its seq. It takes sends
//! in arrival order, batches them into one durable append (group commit), and only then
//! publishes the messages, in seq order, and acknowledges them. Per chat it keeps the
//! head seq and the client_msg_ids of the dedup window in memory, loaded from the store
//! the first time the chat is touched, so a restart resumes exactly where the log ends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_api::{ChatError, ChatId, SendOutcome, SendRequest, UserId};
use chat_protocol::{now_ms, Chat, Message};
use chat_store::MessageStore;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::cache::ChatCache;
use crate::config::ChatConfig;
use crate::errors::store_error;
use crate::fanout::Fanout;
use crate::ownership::Ownership;

/// The most sends one append takes.
const MAX_BATCH: usize = 1024;

/// How often (in batches) remembered client_msg_ids past the dedup window are dropped.
const PRUNE_EVERY_BATCHES: u64 = 4096;

pub(crate) struct SendCommand {
    pub(crate) sender_id: UserId,
    pub(crate) session: Option<Uuid>,
    pub(crate) request: SendRequest,
    pub(crate) reply: oneshot::Sender<Result<SendOutcome, ChatError>>,
}

/// Durable head seq per chat, as last committed; used to validate watermarks.
#[derive(Default)]
pub(crate) struct Heads(Mutex<HashMap<ChatId, u64>>);

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
    /// (sender, client_msg_id) -> the outcome of the first send.
    recent: HashMap<(UserId, String), SendOutcome>,
    last_used: u64,
}

pub(crate) struct Sequencer {
    store: Arc<dyn MessageStore>,
    chats: Arc<ChatCache>,
    fanout: Arc<Fanout>,
    heads: Arc<Heads>,
    ownership: Arc<dyn Ownership>,
    dedup_window: Duration,
    capacity: usize,
    orders: HashMap<ChatId, ChatOrder>,
    tick: u64,
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
        fanout: Arc<Fanout>,
        heads: Arc<Heads>,
        ownership: Arc<dyn Ownership>,
        config: &ChatConfig,
    ) -> mpsc::Sender<SendCommand> {
        let (tx, rx) = mpsc::channel(config.sequencer_queue.max(1));
        let sequencer = Sequencer {
            store,
            chats,
            fanout,
            heads,
            ownership,
            dedup_window: config.dedup_window,
            capacity: config.sequencer_cached_chats.max(1),
            orders: HashMap::new(),
            tick: 0,
        };
        tokio::spawn(sequencer.run(rx));
        tx
    }

    async fn run(mut self, mut rx: mpsc::Receiver<SendCommand>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            self.process(std::mem::take(&mut commands)).await;
        }
    }

    async fn process(&mut self, commands: Vec<SendCommand>) {
        let taken = std::time::Instant::now();
        self.tick += 1;
        self.evict_if_full();
        if self.tick.is_multiple_of(PRUNE_EVERY_BATCHES) {
            self.prune_expired_dedup();
        }
        let mut pending: Vec<Pending> = Vec::new();
        let mut repeats: Vec<Repeat> = Vec::new();
        let mut touched: HashSet<ChatId> = HashSet::new();
        for command in commands {
            match self.accept(command, &mut pending, &mut touched).await {
                Ok(Some(repeat)) => repeats.push(repeat),
                Ok(None) => {}
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
        let batch_size = messages.len();
        match self.store.append(messages).await {
            Ok(()) => {
                metrics::counter!("chat_messages_stored_total").increment(batch_size as u64);
                let mut deliveries = Vec::with_capacity(pending.len());
                for p in pending {
                    // Durable, but acked only if this instance still owns the chat under
                    // the same lease; otherwise the client retries at the new owner,
                    // whose dedup state (loaded from the store) knows this message.
                    if self.ownership.owns(&p.message.chat_id) != Some(p.generation) {
                        self.orders.remove(&p.message.chat_id);
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
                tracing::warn!(error = %e, batch_size, "append failed; chats will reload their order from the store");
                // Forget what this batch assigned: the store's head is the truth again.
                for chat_id in &touched {
                    self.orders.remove(chat_id);
                }
                let error = store_error(e);
                for p in pending {
                    let _ = p.reply.send(Err(error.clone()));
                }
                for repeat in repeats {
                    // A repeat of a message in the failed batch is not durable either;
                    // repeats of older messages are, but the client will simply retry.
                    let _ = repeat.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Places one send in the batch, or recognises it as a repeat.
    #[allow(clippy::type_complexity)]
    async fn accept(
        &mut self,
        command: SendCommand,
        pending: &mut Vec<Pending>,
        touched: &mut HashSet<ChatId>,
    ) -> Result<Option<Repeat>, (oneshot::Sender<Result<SendOutcome, ChatError>>, ChatError)> {
        let SendCommand {
            sender_id,
            session,
            request,
            reply,
        } = command;
        let Some(generation) = self.ownership.owns(&request.chat_id) else {
            return Err((reply, ChatError::moved()));
        };
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
            let mut outcome = previous.clone();
            outcome.created = false;
            return Ok(Some(Repeat { outcome, reply }));
        }
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
            outcome_of(&message, true),
        );
        touched.insert(message.chat_id.clone());
        pending.push(Pending {
            generation,
            chat,
            message,
            origin: session,
            reply,
        });
        Ok(None)
    }

    /// Loads the chat's order state from the store unless it is held under `generation`.
    async fn load_order(&mut self, chat_id: &ChatId, generation: u64) -> Result<(), ChatError> {
        if self
            .orders
            .get(chat_id)
            .is_some_and(|o| o.generation == generation)
        {
            return Ok(());
        }
        let since = now_ms() - self.dedup_window.as_millis() as i64;
        let state = self
            .store
            .sequencer_state(chat_id, since)
            .await
            .map_err(store_error)?;
        let recent = state
            .recent
            .into_iter()
            .map(|e| {
                let outcome = SendOutcome {
                    chat_id: chat_id.clone(),
                    client_msg_id: e.client_msg_id.clone(),
                    msg_id: e.msg_id,
                    seq: e.seq,
                    ts: e.ts,
                    created: false,
                };
                ((e.sender_id, e.client_msg_id), outcome)
            })
            .collect();
        self.orders.insert(
            chat_id.clone(),
            ChatOrder {
                generation,
                head_seq: state.head_seq,
                recent,
                last_used: self.tick,
            },
        );
        Ok(())
    }

    /// Keeps memory bounded: when full, forget the least recently used half (they reload
    /// from the store).
    fn evict_if_full(&mut self) {
        if self.orders.len() < self.capacity {
            return;
        }
        let mut ticks: Vec<u64> = self.orders.values().map(|o| o.last_used).collect();
        ticks.sort_unstable();
        let cutoff = ticks[ticks.len() / 2];
        self.orders.retain(|_, o| o.last_used > cutoff);
    }

    /// Forgets client_msg_ids older than the dedup window, so busy chats stay bounded too.
    fn prune_expired_dedup(&mut self) {
        let oldest = now_ms() - self.dedup_window.as_millis() as i64;
        for order in self.orders.values_mut() {
            order.recent.retain(|_, outcome| outcome.ts >= oldest);
        }
    }
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
