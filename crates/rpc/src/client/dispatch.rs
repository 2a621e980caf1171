//! The dispatcher: takes sends in call order and hands each to the pipeline of its chat's
//! owner, keeping every chat's sends in that order even while the chat changes owner.
//! A send to be tried again (answered `moved`, no owner, a lost stream) is parked, in call
//! order, and tried again after a pause (see `reroute`); while a chat has sends parked, or
//! still in flight at an owner other than the one the leases now name, its later sends
//! are parked behind them instead of overtaking them at the new owner.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_api::{ChatError, ChatId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::channels::Channels;
use super::reroute::Reroute;
use super::routes::Routes;
use super::sends::{spawn_pipeline, Pipeline, QueuedSend};

/// Sends of each chat handed to a pipeline and not yet answered, and where.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<ChatId, (String, usize)>>);

impl Flights {
    fn start(&self, chat: &ChatId, url: &str) {
        let mut flights = self.0.lock().expect("flights lock");
        let flight = flights
            .entry(chat.clone())
            .or_insert_with(|| (url.to_owned(), 0));
        flight.0 = url.to_owned();
        flight.1 += 1;
    }

    /// One send of `chat` left its pipeline (answered, given up, or to be tried again).
    pub(crate) fn done(&self, chat: &ChatId) {
        let mut flights = self.0.lock().expect("flights lock");
        if let Some(flight) = flights.get_mut(chat) {
            flight.1 -= 1;
            if flight.1 == 0 {
                flights.remove(chat);
            }
        }
    }

    /// Whether sends of `chat` are still in flight somewhere other than `url`.
    fn elsewhere(&self, chat: &ChatId, url: &str) -> bool {
        let flights = self.0.lock().expect("flights lock");
        flights.get(chat).is_some_and(|(at, n)| *n > 0 && at != url)
    }
}

/// Where pipelines send back what is to be tried again. Weak, so the dispatcher still
/// ends when the client is dropped.
#[derive(Clone)]
pub(crate) struct Requeue(mpsc::WeakUnboundedSender<(QueuedSend, ChatError)>);

impl Requeue {
    pub(crate) fn again(&self, send: QueuedSend, error: ChatError) {
        match self.0.upgrade() {
            Some(retries) => {
                if let Err(e) = retries.send((send, error)) {
                    let (send, error) = e.0;
                    let _ = send.reply.send(Err(error));
                }
            }
            None => {
                let _ = send.reply.send(Err(error));
            }
        }
    }
}

/// What a send parked behind its chat's earlier ones answers if its window ends.
fn changing_owner() -> ChatError {
    ChatError::unavailable_for("chat is changing owner, retry", chat_api::TAKEOVER_RETRY)
}

struct Parked {
    send: QueuedSend,
    /// What to answer if its window ends before it is through.
    error: ChatError,
}

pub(crate) struct Dispatcher {
    routes: Arc<Routes>,
    channels: Arc<Channels>,
    reroute: Reroute,
    timeout: Duration,
    max_batch_bytes: usize,
    pipelines: HashMap<String, mpsc::Sender<QueuedSend>>,
    flights: Arc<Flights>,
    requeue: Requeue,
    /// Sends waiting to be tried again, by call order.
    parked: BTreeMap<u64, Parked>,
    /// How many of each chat's sends are parked.
    parked_chats: HashMap<ChatId, usize>,
    /// When the parked sends are tried again.
    wake_at: Option<Instant>,
    next_order: u64,
}

impl Dispatcher {
    /// Runs until the client's queue closes.
    pub(crate) async fn run(
        routes: Arc<Routes>,
        channels: Arc<Channels>,
        reroute: Reroute,
        timeout: Duration,
        max_batch_bytes: usize,
        mut queued: mpsc::Receiver<QueuedSend>,
    ) {
        let (retry_tx, mut retries) = mpsc::unbounded_channel();
        let mut dispatcher = Dispatcher {
            routes,
            channels,
            reroute,
            timeout,
            max_batch_bytes,
            pipelines: HashMap::new(),
            flights: Arc::default(),
            requeue: Requeue(retry_tx.downgrade()),
            parked: BTreeMap::new(),
            parked_chats: HashMap::new(),
            wake_at: None,
            next_order: 0,
        };
        loop {
            let timer = dispatcher.wake_at.map(tokio::time::sleep_until);
            let waits = timer.is_some();
            tokio::select! {
                biased;
                Some((send, error)) = retries.recv() => dispatcher.park(send, error),
                _ = futures_util::future::OptionFuture::from(timer), if waits => {
                    dispatcher.retry_parked().await;
                }
                next = queued.recv() => match next {
                    Some(mut send) => {
                        dispatcher.next_order += 1;
                        send.order = dispatcher.next_order;
                        dispatcher.dispatch(send).await;
                    }
                    None => break,
                },
            }
        }
        drop(retry_tx);
    }

    /// Hands `send` to its owner's pipeline, or parks it to keep its chat's order.
    async fn dispatch(&mut self, send: QueuedSend) {
        let chat = send.request.chat_id.clone();
        if self.parked_chats.contains_key(&chat) {
            return self.park_behind(send, changing_owner());
        }
        let url = match self.routes.owner(&chat).await {
            Ok(url) => url,
            // No owner right now (or no Redis to ask): nothing was sent, try again.
            Err(e) => return self.park(send, e),
        };
        if self.flights.elsewhere(&chat, &url) {
            return self.park_behind(send, changing_owner());
        }
        self.flights.start(&chat, &url);
        let pipeline = match self.pipelines.get(&url) {
            Some(pipeline) => pipeline,
            None => {
                let pipeline = Pipeline::new(
                    url.clone(),
                    self.routes.clone(),
                    self.channels.clone(),
                    self.requeue.clone(),
                    self.flights.clone(),
                    self.timeout,
                );
                self.pipelines
                    .entry(url.clone())
                    .or_insert(spawn_pipeline(pipeline, self.max_batch_bytes))
            }
        };
        if let Err(e) = pipeline.try_send(send) {
            let send = match e {
                mpsc::error::TrySendError::Full(send) | mpsc::error::TrySendError::Closed(send) => {
                    send
                }
            };
            self.flights.done(&chat);
            metrics::counter!("chat_send_overload_total").increment(1);
            let _ = send
                .reply
                .send(Err(ChatError::unavailable("send pipeline full, retry")));
        }
    }

    /// Parks `send` to be tried again after a pause, or answers `error` when its window
    /// is over.
    fn park(&mut self, mut send: QueuedSend, error: ChatError) {
        let Some(pause) = self.reroute.pause(send.since, send.attempt) else {
            let _ = send.reply.send(Err(error));
            return;
        };
        send.attempt += 1;
        metrics::counter!("chat_sends_rerouted_total").increment(1);
        let wake = Instant::now() + pause;
        self.wake_at = Some(self.wake_at.map_or(wake, |at| at.min(wake)));
        self.hold(send, error);
    }

    /// Parks `send` behind its chat's earlier sends, without a try of its own.
    fn park_behind(&mut self, send: QueuedSend, error: ChatError) {
        if self.reroute.pause(send.since, send.attempt).is_none() {
            let _ = send.reply.send(Err(error));
            return;
        }
        if self.wake_at.is_none() {
            self.wake_at =
                Some(Instant::now() + self.reroute.pause(send.since, 0).unwrap_or_default());
        }
        self.hold(send, error);
    }

    fn hold(&mut self, send: QueuedSend, error: ChatError) {
        *self
            .parked_chats
            .entry(send.request.chat_id.clone())
            .or_default() += 1;
        self.parked.insert(send.order, Parked { send, error });
    }

    /// Tries every parked send again, in call order.
    async fn retry_parked(&mut self) {
        self.wake_at = None;
        self.parked_chats.clear();
        let parked = std::mem::take(&mut self.parked);
        for (_, Parked { send, error }) in parked {
            if send.reply.is_closed() {
                continue; // its caller stopped waiting
            }
            let chat = send.request.chat_id.clone();
            if self.parked_chats.contains_key(&chat) {
                // An earlier send of its chat was parked again: stay behind it.
                self.park_behind(send, error);
                continue;
            }
            self.dispatch(send).await;
        }
    }
}
