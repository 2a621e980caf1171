//! `direct`: N pairs, each sender writing to its receiver in their direct chat. Closed loop
//! keeps `inflight` sends outstanding per sender; open loop (`--rate`) sends on a fixed
//! schedule whatever the server does, and measures latency from the scheduled time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use futures_util::{FutureExt, SinkExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::receivers;
use super::report::{Latency, Report};
use super::stats::{progress, Stats};
use super::{run_id, BenchArgs};
use crate::client::{connect, create_chat, http, source_address, Keys, Ws};

/// Body filler, so messages are a realistic size (~100 bytes).
const FILLER: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor";
/// How long receivers keep listening after the senders stop.
const GRACE: Duration = Duration::from_secs(2);

pub(super) async fn run(args: &BenchArgs, pairs: usize, inflight: usize) -> anyhow::Result<Report> {
    let keys = Keys::new(&args.jwt_secret)?;
    let id = run_id();
    let http = http();
    let url = |i: usize| args.url[i % args.url.len()].clone();
    let chats: Vec<String> = stream::iter(0..pairs)
        .map(|i| {
            let (http, token, url) = (&http, keys.token(&format!("b{id}-s{i}")), url(i));
            let body = json!({"kind": "direct", "members": [format!("b{id}-r{i}")]});
            async move { create_chat(http, &url, &token, body).await }
        })
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    let stats = Arc::new(super::stats_for(args)?);
    let (stop, stopped) = watch::channel(false);
    let mut listening = Vec::new();
    for i in 0..pairs {
        let ws = connect(
            &url(i),
            &keys.token(&format!("b{id}-r{i}")),
            "bench",
            Some(source_address(i, args.sources)),
        )
        .await?;
        listening.push(ws);
    }
    let receivers = receivers::spawn(listening, &stats, &stopped);
    // Every sender connects before any sends: handshakes still going on while the first
    // senders run would show up as their latency (tens of ms at the start of a run).
    let mut sockets = Vec::new();
    for i in 0..pairs {
        let ws = connect(
            &url(i),
            &keys.token(&format!("b{id}-s{i}")),
            "bench",
            Some(source_address(i + pairs, args.sources)),
        )
        .await?;
        sockets.push(ws);
    }
    let mut senders = Vec::new();
    let started = Instant::now();
    let deadline = started + args.duration;
    let start_us = stats.now_us();
    stats.sending_starts(start_us);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(pairs as f64 / r.max(1) as f64));
    for (i, (chat, ws)) in chats.into_iter().zip(sockets).enumerate() {
        let sender = Sender {
            ws,
            chat,
            stats: stats.clone(),
            deadline,
            next_id: 0,
            outstanding: 0,
        };
        senders.push(tokio::spawn(match interval {
            Some(every) => sender
                .open_loop(start_us, every, i as u64, pairs as u64)
                .boxed(),
            None => sender.closed_loop(inflight).boxed(),
        }));
    }
    let bar = progress(&stats, args.json);
    for s in senders {
        let _ = s.await;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(GRACE).await;
    let _ = stop.send(true);
    for r in receivers {
        let _ = r.await;
    }
    if let Some(bar) = bar {
        bar.abort();
        eprintln!();
    }
    let secs = elapsed.as_secs_f64();
    super::write_timeline(args, &stats)?;
    Ok(Report {
        scenario: "direct".into(),
        duration_s: secs,
        connections: pairs * 2,
        sent: Stats::count(&stats.sent),
        acked: Stats::count(&stats.acked),
        received: Stats::count(&stats.received),
        errors: Stats::count(&stats.errors),
        throughput_msgs_per_s: Stats::count(&stats.acked) as f64 / secs,
        delivered_frames_per_s: Stats::count(&stats.received) as f64 / secs,
        latency: Latency::of(&stats.latency.snapshot()),
        extra: match args.rate {
            Some(rate) => json!({"pairs": pairs, "mode": "open", "target_rate": rate,
                                 "send_lag": Latency::of(&stats.send_lag.snapshot())}),
            None => json!({"pairs": pairs, "mode": "closed", "inflight": inflight}),
        },
    })
}

pub(super) fn body(at_us: u64) -> String {
    format!("t={at_us} {FILLER}")
}

pub(super) struct Sender {
    pub(super) ws: Ws,
    pub(super) chat: String,
    pub(super) stats: Arc<Stats>,
    pub(super) deadline: Instant,
    pub(super) next_id: u64,
    pub(super) outstanding: u64,
}

impl Sender {
    async fn send_one(&mut self, at_us: u64) -> bool {
        self.queue_one(at_us).await && self.flush().await
    }

    /// Writes a send into the socket's buffer; `flush` puts it on the wire.
    async fn queue_one(&mut self, at_us: u64) -> bool {
        self.next_id += 1;
        let frame = json!({"type": "send", "id": self.next_id.to_string(), "chat_id": self.chat,
                           "client_msg_id": format!("c{}", self.next_id), "body": body(at_us)});
        if self
            .ws
            .feed(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.outstanding += 1;
        true
    }

    async fn flush(&mut self) -> bool {
        if self.ws.flush().await.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Waits for one reply and counts it; false when the connection is gone.
    async fn on_reply(&mut self) -> bool {
        let next = self.ws.next().await;
        self.count_reply(next)
    }

    /// Counts the replies already read without waiting; false when the connection is gone.
    fn on_ready_replies(&mut self) -> bool {
        while let Some(next) = self.ws.next().now_or_never() {
            if !self.count_reply(next) {
                return false;
            }
        }
        true
    }

    /// Counts one reply by its type, matched in the text: the server writes compact JSON,
    /// and a full parse of every ack cost the generator more than the ack cost the server.
    fn count_reply(&mut self, next: Option<Result<Message, WsError>>) -> bool {
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
            Some(Ok(_)) => return true,
        };
        if text.contains(r#""type":"sent""#) {
            self.outstanding -= 1;
            self.stats.acked.fetch_add(1, Ordering::Relaxed);
        } else if text.contains(r#""type":"error""#) {
            self.outstanding = self.outstanding.saturating_sub(1);
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    pub(super) async fn closed_loop(mut self, inflight: usize) {
        for _ in 0..inflight {
            let now = self.stats.now_us();
            if !self.send_one(now).await {
                return;
            }
        }
        while Instant::now() < self.deadline {
            // Every ack already here, then every send they make room for, in one write:
            // a syscall per frame made the generator, not the server, the limit.
            if !self.on_reply().await || !self.on_ready_replies() {
                return;
            }
            let mut queued = false;
            while (self.outstanding as usize) < inflight && Instant::now() < self.deadline {
                let now = self.stats.now_us();
                if !self.queue_one(now).await {
                    return;
                }
                queued = true;
            }
            if queued && !self.flush().await {
                return;
            }
        }
        self.drain().await;
    }

    /// Sends message k at `start + (k * senders + offset) * every / senders`, spreading the
    /// senders' schedules evenly; latency counts from that scheduled time. How late each
    /// send reached its socket goes to the stats' send lag.
    pub(super) async fn open_loop(
        mut self,
        start_us: u64,
        every: Duration,
        offset: u64,
        senders: u64,
    ) {
        let every_us = every.as_micros() as u64;
        let mut k = 0u64;
        let mut lag = super::stats::histogram();
        loop {
            let due_us = start_us + k * every_us + offset * every_us / senders.max(1);
            let due = self.stats.started + Duration::from_micros(due_us);
            if due >= self.deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {
                    let queued = self.queue_one(due_us).await;
                    let flushed = queued && self.flush().await;
                    if queued {
                        // Counted as sent: its lag counts too, even if the flush failed.
                        let _ = lag.record(self.stats.now_us().saturating_sub(due_us).max(1));
                    }
                    if !flushed {
                        break;
                    }
                    k += 1;
                }
                alive = self.on_reply(), if self.outstanding > 0 => if !alive { break },
            }
        }
        self.stats.send_lag.merge(&lag);
        self.drain().await;
    }

    /// Collects the replies still outstanding, for up to the grace period.
    async fn drain(&mut self) {
        let give_up = Instant::now() + GRACE;
        while self.outstanding > 0 && Instant::now() < give_up {
            let reply = tokio::time::timeout_at(give_up.into(), self.on_reply()).await;
            if !matches!(reply, Ok(true)) {
                return;
            }
        }
    }
}
