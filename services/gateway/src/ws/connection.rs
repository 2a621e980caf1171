//! One task per WebSocket connection: a `select!` over client frames, the bounded outbound
//! queue the bus fills, replies of in-flight requests, heartbeats and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chat_protocol::{decode_client_frame, ErrorCode, ServerFrame, PROTOCOL_VERSION};
use chat_service::Caller;
use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::limits::{RateLimit, ViolationMeter};
use super::requests::{error_frame, handle, text, Handled, Session};
use crate::registry::Connection;
use crate::state::AppState;

/// A write that takes longer than this means the client is gone or hopelessly slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

type Sink = SplitSink<WebSocket, Message>;

/// Why the loop ended, and what (if anything) to tell the client.
enum End {
    ClientGone,
    Close(u16, &'static str),
    Drain,
}

pub(crate) async fn run(socket: WebSocket, state: AppState, user_id: String, device_id: String) {
    let session_id = Uuid::new_v4();
    let (outbound_tx, mut outbound) = mpsc::channel(state.config.outbound_queue.max(1));
    let connection = Arc::new(Connection {
        session: session_id,
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        outbound: outbound_tx,
        kick: CancellationToken::new(),
    });
    let (mut sink, stream) = socket.split();
    if state.registry.register(connection.clone()).is_err() {
        let refusal = error_frame(
            None,
            ErrorCode::Forbidden,
            "too many devices connected for this user",
        );
        let _ = write(&mut sink, refusal).await;
        close(&mut sink, close_code::POLICY, "too many devices").await;
        return;
    }
    metrics::counter!("chat_ws_connections_total").increment(1);
    state.presence.connected(&user_id, session_id).await;
    subscribe_large_groups(&state, &user_id, &device_id, session_id);

    let hello = ServerFrame::Hello {
        proto: PROTOCOL_VERSION,
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        session_id: session_id.to_string(),
        server_id: state.server_id.to_string(),
        heartbeat_ms: state.config.heartbeat.as_millis() as u64,
        max_frame_bytes: state.config.max_frame_bytes,
        max_body_bytes: state.chat.max_body_bytes(),
    };
    let session = Arc::new(Session {
        caller: Caller {
            user_id: user_id.clone(),
            device_id,
            session: Some(session_id),
        },
        connection: connection.clone(),
        send_limit: RateLimit::per_second(state.config.send_rate, state.config.send_burst),
        typing_limit: RateLimit::per_second(state.config.typing_rate, state.config.typing_rate),
        state: state.clone(),
    });

    let end = if write(&mut sink, text(&hello)).await.is_ok() {
        serve(&session, &mut sink, stream, &mut outbound).await
    } else {
        End::ClientGone
    };
    match end {
        End::ClientGone => {}
        End::Close(code, reason) => close(&mut sink, code, reason).await,
        End::Drain => {
            let jitter = state.config.reconnect_jitter.as_millis() as u64;
            let after_ms = rand::rng().random_range(0..=jitter);
            let _ = write(&mut sink, text(&ServerFrame::Reconnect { after_ms })).await;
            close(&mut sink, close_code::RESTART, "server restarting").await;
        }
    }
    state.registry.unregister(&connection);
    state.presence.disconnected(&user_id, session_id).await;
}

async fn serve(
    session: &Arc<Session>,
    sink: &mut Sink,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    outbound: &mut mpsc::Receiver<Utf8Bytes>,
) -> End {
    let state = &session.state;
    let config = &state.config;
    let mut in_flight = FuturesUnordered::new();
    let mut violations = ViolationMeter::new(config.max_violations);
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();

    loop {
        tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => {
                // Let requests already accepted finish, so their replies are not lost.
                while let Some(frames) = in_flight.next().await {
                    if write_all(sink, frames).await.is_err() {
                        return End::ClientGone;
                    }
                }
                return End::Drain;
            }
            _ = session.connection.kick.cancelled() => {
                return End::Close(close_code::TRY_AGAIN_LATER, "too slow; reconnect and sync");
            }
            Some(frame) = outbound.recv() => {
                if write(sink, frame).await.is_err() {
                    return End::ClientGone;
                }
            }
            Some(frames) = in_flight.next(), if !in_flight.is_empty() => {
                if write_all(sink, frames).await.is_err() {
                    return End::ClientGone;
                }
            }
            incoming = stream.next(), if in_flight.len() < config.max_inflight => {
                last_heard = Instant::now();
                let message = match incoming {
                    None | Some(Err(_)) => {
                        // Reading fails for a broken connection or an over-limit frame;
                        // 1009 tells the latter what happened and costs the former nothing.
                        return End::Close(close_code::TOO_BIG, "frame too large or connection broken");
                    }
                    Some(Ok(message)) => message,
                };
                let (frames, violation) = match message {
                    Message::Text(raw) => on_text(session, raw.as_str(), &mut in_flight),
                    Message::Binary(_) => (
                        vec![error_frame(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text")],
                        true,
                    ),
                    Message::Close(_) => return End::ClientGone,
                    Message::Ping(_) | Message::Pong(_) => (Vec::new(), false),
                };
                if write_all(sink, frames).await.is_err() {
                    return End::ClientGone;
                }
                if violation && violations.record() {
                    return End::Close(close_code::POLICY, "too many invalid or rate-limited frames");
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.heartbeat * 2 {
                    return End::Close(close_code::GOING_AWAY, "heartbeat timeout");
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return End::ClientGone;
                }
            }
        }
    }
}

/// Starts receiving the user's large groups (their events come on group topics). Runs
/// beside the connection: events before it completes are recovered by the client's sync.
fn subscribe_large_groups(state: &AppState, user_id: &str, device_id: &str, session: Uuid) {
    let caller = Caller {
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
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

/// Decodes and dispatches one text frame; returns frames to write now and whether it was a violation.
fn on_text(
    session: &Arc<Session>,
    raw: &str,
    in_flight: &mut FuturesUnordered<futures_util::future::BoxFuture<'static, Vec<Utf8Bytes>>>,
) -> (Vec<Utf8Bytes>, bool) {
    let max = session.state.config.max_frame_bytes;
    if raw.len() > max {
        return (
            vec![error_frame(
                None,
                ErrorCode::TooLarge,
                format!("frame is larger than {max} bytes"),
            )],
            true,
        );
    }
    match decode_client_frame(raw) {
        Err(e) => (vec![error_frame(e.re, e.code, e.message)], true),
        Ok(frame) => {
            let reply = handle(session, frame);
            match reply.handled {
                Handled::Now(frames) => (frames, reply.violation),
                Handled::Later(work) => {
                    in_flight.push(work);
                    (Vec::new(), reply.violation)
                }
            }
        }
    }
}

async fn write(sink: &mut Sink, frame: Utf8Bytes) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(frame))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn write_all(sink: &mut Sink, frames: Vec<Utf8Bytes>) -> Result<(), ()> {
    for frame in frames {
        write(sink, frame).await?;
    }
    Ok(())
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}
