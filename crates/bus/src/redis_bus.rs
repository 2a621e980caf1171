//! The bus over Redis Pub/Sub for the scaled-out services. Publishing goes through one
//! task that pipelines PUBLISH commands in order; subscribing is a second task that keeps
//! the set of wanted channels and, whenever the connection drops (Redis restart, network),
//! reconnects with backoff and subscribes the whole set again. Redis may drop messages
//! meanwhile; once subscribed again the bus calls its gap handler, so that subscribers
//! have their clients recover them with `sync`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{wire, Bus, BusEvent, GapHandler, Handler, Topic};

/// Channel names are namespaced so the bus can share a Redis with other data.
const CHANNEL_PREFIX: &str = "chat:";
/// Publishes waiting for Redis before new ones are dropped.
const PUBLISH_QUEUE: usize = 65_536;
const MAX_PIPELINE: usize = 512;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

enum Control {
    Subscribe(Topic),
    Unsubscribe(Topic),
}

type SharedHandler = Arc<RwLock<Option<Handler>>>;
type SharedGapHandler = Arc<RwLock<Option<GapHandler>>>;

pub struct RedisBus {
    publishes: mpsc::Sender<(String, Bytes)>,
    control: mpsc::UnboundedSender<Control>,
    wanted: Arc<Mutex<HashSet<Topic>>>,
    handler: SharedHandler,
    gap_handler: SharedGapHandler,
    _stop: DropGuard,
}

impl RedisBus {
    /// Connects (the first connection must succeed; later ones are retried forever).
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let publisher = ConnectionManager::new(client.clone()).await?;
        let stop = CancellationToken::new();
        let (publishes, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let wanted = Arc::new(Mutex::new(HashSet::new()));
        let handler: SharedHandler = Arc::new(RwLock::new(None));
        let gap_handler: SharedGapHandler = Arc::new(RwLock::new(None));
        tokio::spawn(publish_loop(publisher, publish_rx, stop.clone()));
        tokio::spawn(subscribe_loop(
            client,
            control_rx,
            wanted.clone(),
            Handlers {
                events: handler.clone(),
                gaps: gap_handler.clone(),
            },
            stop.clone(),
        ));
        Ok(RedisBus {
            publishes,
            control,
            wanted,
            handler,
            gap_handler,
            _stop: stop.drop_guard(),
        })
    }
}

/// The Redis channel of a topic.
fn channel(topic: &Topic) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

impl Bus for RedisBus {
    fn publish(&self, topic: &Topic, event: BusEvent) {
        if self
            .publishes
            .try_send((channel(topic), wire::encode(&event)))
            .is_err()
        {
            metrics::counter!("chat_bus_dropped_total", "reason" => "publish_queue_full")
                .increment(1);
        }
    }

    fn subscribe(&self, topic: &Topic) {
        if self.wanted.lock().expect("bus lock").insert(topic.clone()) {
            let _ = self.control.send(Control::Subscribe(topic.clone()));
        }
    }

    fn unsubscribe(&self, topic: &Topic) {
        if self.wanted.lock().expect("bus lock").remove(topic) {
            let _ = self.control.send(Control::Unsubscribe(topic.clone()));
        }
    }

    fn set_handler(&self, handler: Handler) {
        *self.handler.write().expect("bus lock") = Some(handler);
    }

    fn set_gap_handler(&self, handler: GapHandler) {
        *self.gap_handler.write().expect("bus lock") = Some(handler);
    }
}

/// What the subscriber task calls: for each event, and after each gap.
struct Handlers {
    events: SharedHandler,
    gaps: SharedGapHandler,
}

async fn publish_loop(
    mut conn: ConnectionManager,
    mut rx: mpsc::Receiver<(String, Bytes)>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_PIPELINE);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            n = rx.recv_many(&mut batch, MAX_PIPELINE) => if n == 0 { return },
        }
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(payload.as_ref())
                .ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            // The connection manager reconnects by itself; these events are lost to the
            // fast path and reach clients through sync.
            tracing::warn!(error = %e, "redis publish failed");
            metrics::counter!("chat_redis_errors_total", "op" => "publish").increment(1);
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    mut control: mpsc::UnboundedReceiver<Control>,
    wanted: Arc<Mutex<HashSet<Topic>>>,
    handlers: Handlers,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    // Every subscription after the first follows a gap.
    let mut subscribed_before = false;
    while !stop.is_cancelled() {
        match run_subscription(
            &client,
            &mut control,
            &wanted,
            &handlers,
            &stop,
            &mut backoff,
            &mut subscribed_before,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "redis subscription lost; reconnecting");
                metrics::counter!("chat_redis_errors_total", "op" => "subscribe").increment(1);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: subscribe everything wanted (then report the gap, if this
/// follows one), then follow control and messages. Returns Ok on shutdown, Err when the
/// connection fails. Once subscribed, the next failure starts again from the first
/// backoff: each outage is waited out afresh.
async fn run_subscription(
    client: &redis::Client,
    control: &mut mpsc::UnboundedReceiver<Control>,
    wanted: &Mutex<HashSet<Topic>>,
    handlers: &Handlers,
    stop: &CancellationToken,
    backoff: &mut Duration,
    subscribed_before: &mut bool,
) -> redis::RedisResult<()> {
    let (mut sink, mut stream) = client.get_async_pubsub().await?.split();
    // Anything queued in `control` is already reflected in `wanted`.
    while control.try_recv().is_ok() {}
    let channels: Vec<String> = wanted
        .lock()
        .expect("bus lock")
        .iter()
        .map(channel)
        .collect();
    if !channels.is_empty() {
        sink.subscribe(channels).await?;
    }
    tracing::info!("redis subscription established");
    *backoff = FIRST_BACKOFF;
    if std::mem::replace(subscribed_before, true) {
        // After subscribing: whatever is published from here on arrives, and what the
        // subscribers' clients sync from now on covers everything before.
        metrics::counter!("chat_bus_gaps_total").increment(1);
        let gaps = handlers.gaps.read().expect("bus lock").clone();
        if let Some(gaps) = gaps {
            gaps();
        }
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            command = control.recv() => match command {
                None => return Ok(()),
                Some(Control::Subscribe(topic)) => sink.subscribe(channel(&topic)).await?,
                Some(Control::Unsubscribe(topic)) => sink.unsubscribe(channel(&topic)).await?,
            },
            message = stream.next() => {
                let Some(message) = message else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "pubsub connection closed")));
                };
                let Some(topic) = message
                    .get_channel_name()
                    .strip_prefix(CHANNEL_PREFIX)
                    .and_then(Topic::parse) else { continue };
                let Some(decoded) = wire::decode(Bytes::copy_from_slice(message.get_payload_bytes())) else {
                    metrics::counter!("chat_bus_dropped_total", "reason" => "undecodable").increment(1);
                    continue;
                };
                let current = handlers.events.read().expect("bus lock").clone();
                if let Some(handler) = current {
                    handler(&topic, &decoded);
                }
            }
        }
    }
}
