//! One task per WebSocket connection: a `select!` over client frames, the bounded outbound
//! queue the bus fills, replies of in-flight requests, a frame held back by admission,
//! heartbeats and shutdown. Reading pauses while a frame is held (over a rate, or the
//! connection owes too many reply bytes) and resumes as replies are written. Whatever ends
//! the connection, the replies it owes are written first (within the write timeout).
//! A large group's frames may linger for `CHAT_GROUP_LINGER` so several go out in one
//! write: one syscall and one TCP segment per frame is what fan-out costs most.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chat_api::{Caller, DeviceId, UserId};
use chat_ops::http::ConnectionSlot;
use chat_ops::TRACE_TARGET;
use chat_protocol::{decode_client_frame, ClientFrame, ErrorCode, ServerFrame, PROTOCOL_VERSION};
use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rand::Rng;
use tracing::Instrument;
use uuid::Uuid;

use super::admission::{error_with_retry, Admission, Reserved, Verdict};
use super::close::{close_code, close_for_read_error};
use super::limits::ViolationMeter;
use super::requests::{error_frame, handle, text, Handled, Session};
use super::WRITE_BUFFER_BYTES;
use crate::outbound::{OutboundQueue, Stop};
use crate::registry::{Connection, Outbound};
use crate::state::AppState;

/// A write that takes longer than this means the client is gone or hopelessly slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request still held when the connection ends is answered with this retry hint.
const HELD_RETRY: Duration = Duration::from_secs(1);
/// After its close frame, how long the server keeps reading (and discarding) what the
/// client still sends, waiting for its close reply. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy replies the client has not read yet.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// At most this many queued frames share one flush, so one busy connection's writes stay
/// short enough not to delay its own reads.
const MAX_FRAMES_PER_FLUSH: usize = 64;

type Sink = SplitSink<WebSocket, Message>;

/// Why the loop ended, and what (if anything) to tell the client.
enum End {
    ClientGone,
    /// The client sent a close frame: answer it (RFC 6455 §5.5.1) and send nothing else.
    ClientClosed,
    Close(u16, &'static str),
    /// Write what is owed, then `reconnect` and close with 1012, for this reason.
    Drain(&'static str),
}

/// Large-group frames waiting for the timer (or for a frame that may not wait) to be
/// written together. Boxed, and only while there are some: idle connections hold nothing.
struct Lingering {
    items: Vec<Outbound>,
    until: Instant,
}

/// A request's reply, with the bytes reserved for it.
struct Owed {
    frames: Vec<Utf8Bytes>,
    reserved: Reserved,
}

/// A request being handled, carrying its reservation until its reply is ready.
struct InFlight {
    work: BoxFuture<'static, Vec<Utf8Bytes>>,
    reserved: Option<Reserved>,
}

impl std::future::Future for InFlight {
    type Output = Owed;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Owed> {
        let frames = std::task::ready!(self.work.as_mut().poll(cx));
        let reserved = self.reserved.take().expect("polled after completion");
        std::task::Poll::Ready(Owed { frames, reserved })
    }
}

/// A frame read but not handled yet.
struct Held {
    frame: ClientFrame,
    /// Over a rate until then; `None` while waiting for the connection's budget.
    until: Option<Instant>,
}

/// The connection's side of the conversation: what it owes and what it holds.
struct Link {
    sink: Sink,
    in_flight: FuturesUnordered<InFlight>,
    /// Bytes reserved by requests in flight and replies not yet written.
    owed: usize,
    /// Boxed: a decoded frame is ~100 bytes, which every idle connection would hold.
    held: Option<Box<Held>>,
    admission: Admission,
    violations: ViolationMeter,
    lingering: Option<Box<Lingering>>,
}

pub(crate) async fn run(
    socket: WebSocket,
    state: AppState,
    user_id: UserId,
    device_id: DeviceId,
    session_id: Uuid,
    slot: Option<ConnectionSlot>,
) {
    // Held for as long as the connection lives: it counts against the address's cap.
    let _slot = slot;
    let config = state.config.clone();
    let connection = Arc::new(Connection {
        session: session_id,
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        outbound: OutboundQueue::new(config.outbound_queue),
        queued_bytes: AtomicUsize::new(0),
    });
    let (mut sink, mut stream) = socket.split();
    if state.registry.register(connection.clone()).is_err() {
        let refusal = error_frame(
            None,
            ErrorCode::Forbidden,
            "too many devices connected for this user",
        );
        let _ = write_frames(&mut sink, vec![refusal]).await;
        close(&mut sink, close_code::POLICY, "too many devices").await;
        return;
    }
    // Registered after the shutdown's `stop_all` went by: stop here instead.
    if state.shutdown.is_cancelled() {
        connection.outbound.stop(Stop::Drain);
    }
    metrics::counter!("chat_ws_connections_total").increment(1);
    state.sessions.connected(&user_id, session_id).await;
    subscribe_large_groups(&state, &user_id, &device_id, session_id);

    // Serialized at once: a `ServerFrame` kept alive across `serve` would sit in every
    // connection's task for its whole life.
    let hello = text(&ServerFrame::Hello {
        proto: PROTOCOL_VERSION,
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        session_id: session_id.to_string(),
        server_id: state.server_id.to_string(),
        heartbeat_ms: config.heartbeat.as_millis() as u64,
        max_frame_bytes: config.max_frame_bytes,
        max_body_bytes: state.chat.max_body_bytes(),
    });
    let session = Arc::new(Session {
        caller: Caller {
            user_id: user_id.clone(),
            device_id,
            session: Some(session_id),
        },
        connection: connection.clone(),
        state: state.clone(),
    });
    let mut link = Link {
        sink,
        in_flight: FuturesUnordered::new(),
        owed: 0,
        held: None,
        admission: Admission::new(config.send_rate, config.send_burst, config.typing_rate),
        violations: ViolationMeter::new(config.max_violations),
        lingering: None,
    };
    let end = if write_frames(&mut link.sink, vec![hello]).await.is_ok() {
        link.serve(&session, &mut stream).await
    } else {
        End::ClientGone
    };
    // Boxed, like `on_text` below: every idle connection's task holds its future's
    // largest state, and these two made up half of it (BENCHMARKS.md, idle connections).
    Box::pin(link.finish(end, &state, &mut stream)).await;
    connection.outbound.close();
    state.registry.unregister(&connection);
    state.sessions.disconnected(&user_id, session_id).await;
}

impl Link {
    async fn serve(&mut self, session: &Arc<Session>, stream: &mut SplitStream<WebSocket>) -> End {
        let state = &session.state;
        let config = &state.config;
        let connection = &session.connection;
        let mut heartbeat = tokio::time::interval(config.heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();

        loop {
            // One timer for both things the task may wait for, allocated only while it
            // waits: inline (or one per reason), timers would sit in every idle
            // connection's task.
            let timer = self
                .wake_at()
                .map(|t| Box::pin(tokio::time::sleep_until(t.into())));
            let waits = timer.is_some();
            let may_read = self.held.is_none()
                && self.owed + connection.queued() < state.limits.config.reply_budget_bytes
                && self.in_flight.len() < config.max_inflight;
            tokio::select! {
                biased;
                popped = connection.outbound.pop() => {
                    let item = match popped {
                        Ok(item) => item,
                        Err(Stop::TooSlow) => {
                            return End::Close(close_code::TRY_AGAIN_LATER, "too slow; reconnect and sync");
                        }
                        Err(Stop::Replaced) => {
                            return End::Close(close_code::REPLACED, "replaced by a newer connection of this device");
                        }
                        Err(Stop::Drain) => return End::Drain("server restarting"),
                        Err(Stop::Resync) => return End::Drain("live events were lost; reconnect and sync"),
                    };
                    let Some(item) = self.linger(item, config.group_linger) else {
                        continue;
                    };
                    if Box::pin(self.flush_queued(item, connection)).await.is_err() {
                        return End::ClientGone;
                    }
                    if self.held.as_ref().is_some_and(|h| h.until.is_none()) {
                        Box::pin(self.admit_held(session)).await;
                    }
                }
                Some(owed) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    if Box::pin(self.write_owed(owed)).await.is_err() {
                        return End::ClientGone;
                    }
                    if self.held.as_ref().is_some_and(|h| h.until.is_none()) {
                        Box::pin(self.admit_held(session)).await;
                    }
                }
                _ = OptionFuture::from(timer), if waits => {
                    let now = Instant::now();
                    if self.lingering.as_ref().is_some_and(|l| l.until <= now)
                        && Box::pin(self.flush_lingering(connection)).await.is_err()
                    {
                        return End::ClientGone;
                    }
                    // A frame held over a rate whose time has come, or one held for the
                    // budget: the lingering frames just written may be all it owed, and
                    // nothing else may come along to retry it.
                    if self.held.as_ref().is_some_and(|h| h.until.is_none_or(|t| t <= now)) {
                        Box::pin(self.admit_held(session)).await;
                    }
                }
                incoming = stream.next(), if may_read => {
                    last_heard = Instant::now();
                    let message = match incoming {
                        None => return End::ClientGone,
                        Some(Err(e)) => return match close_for_read_error(e) {
                            Some((code, reason)) => End::Close(code, reason),
                            None => End::ClientGone,
                        },
                        Some(Ok(message)) => message,
                    };
                    match message {
                        Message::Text(raw) => {
                            if let Some(end) = Box::pin(self.on_text(session, raw.as_str())).await {
                                return end;
                            }
                        }
                        Message::Binary(_) => {
                            let refusal = error_frame(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text");
                            if let Some(end) = Box::pin(self.on_violation(refusal)).await {
                                return end;
                            }
                        }
                        Message::Close(_) => return End::ClientClosed,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > config.heartbeat * 2 && may_read {
                        return End::Close(close_code::GOING_AWAY, "heartbeat timeout");
                    }
                    if Box::pin(self.sink.send(Message::Ping(Default::default()))).await.is_err() {
                        return End::ClientGone;
                    }
                }
            }
        }
    }

    /// When the task's one timer must fire: for a frame held over a rate, or for frames
    /// lingering, whichever comes first.
    fn wake_at(&self) -> Option<Instant> {
        let held_until = self.held.as_ref().and_then(|h| h.until);
        let linger_until = self.lingering.as_ref().map(|l| l.until);
        match (held_until, linger_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Keeps a large group's frame back for `linger` (from the first one kept), unless
    /// enough are waiting; returns the frame when it is to be written now, with the
    /// lingering ones before it.
    fn linger(&mut self, item: Outbound, linger: Duration) -> Option<Outbound> {
        if !item.lingers || linger.is_zero() {
            return Some(item);
        }
        let lingering = self.lingering.get_or_insert_with(|| {
            Box::new(Lingering {
                items: Vec::new(),
                until: Instant::now() + linger,
            })
        });
        if lingering.items.len() + 1 >= MAX_FRAMES_PER_FLUSH {
            return Some(item);
        }
        lingering.items.push(item);
        None
    }

    /// Writes the lingering frames, and whatever else is queued, now.
    async fn flush_lingering(&mut self, connection: &Connection) -> Result<(), ()> {
        let Some(lingering) = self.lingering.take() else {
            return Ok(());
        };
        metrics::counter!("chat_ws_lingered_writes_total").increment(1);
        self.write_queued(lingering.items, connection).await
    }

    /// Writes the lingering frames, `next`, and whatever else is queued in one flush:
    /// under load a connection has several frames waiting, and one write per frame costs
    /// a syscall (and a TCP segment) each.
    async fn flush_queued(&mut self, next: Outbound, connection: &Connection) -> Result<(), ()> {
        let mut items = self.lingering.take().map(|l| l.items).unwrap_or_default();
        items.push(next);
        self.write_queued(items, connection).await
    }

    async fn write_queued(
        &mut self,
        items: Vec<Outbound>,
        connection: &Connection,
    ) -> Result<(), ()> {
        let mut bytes = 0;
        let mut frames = Vec::with_capacity(items.len().max(4));
        for item in items {
            bytes += item.frame.as_str().len();
            frames.push(item.frame);
        }
        while frames.len() < MAX_FRAMES_PER_FLUSH {
            let Some(item) = connection.outbound.try_pop() else {
                break;
            };
            bytes += item.frame.as_str().len();
            frames.push(item.frame);
        }
        let written = write_frames(&mut self.sink, frames).await;
        connection.written(bytes);
        written
    }

    /// Decodes one text frame and admits, holds or answers it.
    async fn on_text(&mut self, session: &Arc<Session>, raw: &str) -> Option<End> {
        let max = session.state.config.max_frame_bytes;
        if raw.len() > max {
            let refusal = error_frame(
                None,
                ErrorCode::TooLarge,
                format!("frame is larger than {max} bytes"),
            );
            return self.on_violation(refusal).await;
        }
        match decode_client_frame(raw) {
            Err(e) => {
                self.on_violation(error_frame(e.re, e.code, e.message))
                    .await
            }
            Ok(frame) => {
                self.held = Some(Box::new(Held { frame, until: None }));
                self.admit_held(session).await;
                None
            }
        }
    }

    /// Answers a malformed frame; ends the connection when they come too often.
    async fn on_violation(&mut self, refusal: Utf8Bytes) -> Option<End> {
        if write_frames(&mut self.sink, vec![refusal]).await.is_err() {
            return Some(End::ClientGone);
        }
        if self.violations.record() {
            return Some(End::Close(close_code::POLICY, "too many invalid frames"));
        }
        None
    }

    /// Admits the held frame if it may go now; otherwise it stays held (with a new time).
    async fn admit_held(&mut self, session: &Arc<Session>) {
        let Some(held) = self.held.take() else {
            return;
        };
        let owed = self.owed + session.connection.queued();
        match self.admission.decide(session, &held.frame, owed) {
            Verdict::Admit(reserved) => {
                self.owed += reserved.bytes;
                // Exported traces only: never built unless spans are exported.
                let span = tracing::info_span!(target: TRACE_TARGET, "ws.request", kind = held.frame.kind());
                let reply = span.in_scope(|| handle(session, held.frame));
                let work: BoxFuture<'static, Vec<Utf8Bytes>> = match reply.handled {
                    Handled::Now(frames) => futures_util::future::ready(frames).boxed(),
                    Handled::Later(work) if span.is_disabled() => work,
                    Handled::Later(work) => work.instrument(span).boxed(),
                };
                self.in_flight.push(InFlight {
                    work,
                    reserved: Some(reserved),
                });
                if reply.violation {
                    self.violations.record();
                }
            }
            Verdict::HoldUntil(until) => {
                self.held = Some(Box::new(Held {
                    until: Some(until),
                    ..*held
                }));
            }
            Verdict::HoldForBudget => {
                crate::limits::record_hit("connection_reply_budget");
                self.held = Some(Box::new(Held {
                    until: None,
                    ..*held
                }));
            }
            Verdict::Answer(frames) => {
                // A refused request's error is small and owed like any reply; writing it
                // here keeps the order of replies the client sees simple.
                let _ = write_frames(&mut self.sink, frames).await;
            }
        }
    }

    /// Writes `first` and the other replies already done in one flush, and gives back what
    /// they reserved: a client with many sends in flight gets their acks together when one
    /// commit makes them durable, and one write per reply cost a syscall (and a TCP
    /// segment) each. Replies join the flush only up to one write buffer of bytes, so a
    /// slow client's flush of a few large pages does not share one write timeout.
    async fn write_owed(&mut self, first: Owed) -> Result<(), ()> {
        let mut bytes = reply_bytes(&first);
        let mut done = vec![first];
        while done.len() < MAX_FRAMES_PER_FLUSH && bytes < WRITE_BUFFER_BYTES {
            // Polled without a waker that matters: the loop's `select!` polls `in_flight`
            // again with the task's own before the task waits.
            match self.in_flight.next().now_or_never() {
                Some(Some(owed)) => {
                    bytes += reply_bytes(&owed);
                    done.push(owed);
                }
                _ => break,
            }
        }
        let mut frames = Vec::with_capacity(done.len());
        for owed in &mut done {
            let actual = reply_bytes(owed);
            self.owed += owed.reserved.settle(actual);
            frames.append(&mut owed.frames);
        }
        let written = write_frames(&mut self.sink, frames).await;
        self.owed -= done.iter().map(|owed| owed.reserved.bytes).sum::<usize>();
        written
    }

    /// Ends the connection: writes every reply it owes (a held request is answered
    /// `unavailable`), then the close frame — unless the client is already gone — and
    /// lingers for the client's close reply.
    async fn finish(mut self, end: End, state: &AppState, stream: &mut SplitStream<WebSocket>) {
        match end {
            End::ClientGone => return,
            End::ClientClosed => {
                // The WebSocket layer queued the answering close frame when it read the
                // client's; flushing sends it, so the client sees a clean 1000 close.
                let _ = tokio::time::timeout(WRITE_TIMEOUT, self.sink.close()).await;
                return;
            }
            End::Close(..) | End::Drain(_) => {}
        }
        let owed_written = tokio::time::timeout(WRITE_TIMEOUT, async {
            if let Some(lingering) = self.lingering.take() {
                let frames = lingering.items.into_iter().map(|i| i.frame).collect();
                write_frames(&mut self.sink, frames).await?;
            }
            if let Some(held) = self.held.take() {
                let frames = error_with_retry(
                    held.frame.id(),
                    ErrorCode::Unavailable,
                    "connection closing; retry",
                    HELD_RETRY,
                );
                write_frames(&mut self.sink, frames).await?;
            }
            while let Some(owed) = self.in_flight.next().await {
                self.write_owed(owed).await?;
            }
            Ok::<(), ()>(())
        })
        .await;
        if !matches!(owed_written, Ok(Ok(()))) {
            tracing::debug!("owed replies could not be written; closing without a close frame");
            return;
        }
        match end {
            End::ClientGone | End::ClientClosed => return,
            End::Close(code, reason) => close(&mut self.sink, code, reason).await,
            End::Drain(reason) => {
                let jitter = state.config.reconnect_jitter.as_millis() as u64;
                let after_ms = rand::rng().random_range(0..=jitter);
                let reconnect = text(&ServerFrame::Reconnect { after_ms });
                let _ = write_frames(&mut self.sink, vec![reconnect]).await;
                close(&mut self.sink, close_code::RESTART, reason).await;
            }
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Starts receiving the user's large groups (their events come on group topics). Runs
/// beside the connection: events before it completes are recovered by the client's sync.
fn subscribe_large_groups(state: &AppState, user_id: &UserId, device_id: &DeviceId, session: Uuid) {
    let caller = Caller {
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        session: Some(session),
    };
    let (chat, registry) = (state.chat.clone(), state.registry.clone());
    tokio::spawn(async move {
        match chat.large_groups(&caller).await {
            Ok(groups) if !groups.is_empty() => registry.join_groups(&caller.user_id, &groups),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, user_id = %caller.user_id, "cannot list large groups; their live events will be missed until sync")
            }
        }
    });
}

/// Writes frames in order, all within one write timeout.
fn reply_bytes(owed: &Owed) -> usize {
    owed.frames.iter().map(|f| f.as_str().len()).sum()
}

async fn write_frames(sink: &mut Sink, frames: Vec<Utf8Bytes>) -> Result<(), ()> {
    if frames.is_empty() {
        return Ok(());
    }
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        for frame in frames {
            sink.feed(Message::Text(frame)).await?;
        }
        sink.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "write failed");
            Err(())
        }
        Err(_) => Err(()),
    }
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}
