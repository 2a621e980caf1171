//! `/v1/ws`: authenticates the upgrade request, then runs one task per connection.

mod admission;
mod close;
mod connection;
mod limits;
mod requests;

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chat_api::{DeviceId, UserId};
use chat_ops::http::ConnectionSlot;
use chat_protocol::ids::is_valid_id;
use chat_protocol::ErrorCode;

use futures_util::future::Either;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{token_of, verify};
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

/// Bytes read from a socket at a time; frames larger than this are assembled across reads.
/// Every connection holds this buffer while idle: 4 KiB cost 3 KB more per idle connection
/// than 1 KiB, with no measurable throughput difference (BENCHMARKS.md).
const READ_BUFFER_BYTES: usize = 1024;
/// Frames written together (one flush) are gathered up to this many bytes per write
/// syscall. At 0, which this was, tungstenite writes each frame at once, so a flush of
/// many frames still cost one syscall and one TCP segment each. After the write the
/// buffer is given back if it grew past 4 KiB (the patched tungstenite, vendor/README.md).
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 * 1024;

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    parts: Parts,
    ws: WebSocketUpgrade,
) -> Response {
    match authorize(&state, &params, &parts) {
        Ok((user_id, device_id)) => {
            let slot = parts.extensions.get::<ConnectionSlot>().cloned();
            let hard_limit = state.config.max_frame_bytes.saturating_mul(4);
            // tungstenite's default buffers are 128 KiB each way per connection, allocated
            // up front; ours grow only as far as a connection's traffic takes them.
            ws.max_message_size(hard_limit)
                .max_frame_size(hard_limit)
                .read_buffer_size(READ_BUFFER_BYTES)
                .write_buffer_size(WRITE_BUFFER_BYTES)
                .on_upgrade(move |socket| {
                    let tracker = state.connections.clone();
                    let session = Uuid::new_v4();
                    // With `RUST_LOG=chat_gateway=debug`, every log line of the connection
                    // carries who it is. Not at `info`, and boxed apart when on: a span per
                    // connection, even an unused wrapper for one, costs idle connections
                    // 0.5–1.2 KB each (BENCHMARKS.md, idle connections).
                    let span =
                        tracing::debug_span!("ws.connection", %session, %user_id, %device_id);
                    let run = connection::run(socket, state, user_id, device_id, session, slot);
                    let run = if span.is_disabled() {
                        Either::Left(run)
                    } else {
                        Either::Right(Box::pin(run.instrument(span)))
                    };
                    tracker.track_future(run)
                })
        }
        Err(e) => e.into_response(),
    }
}

fn authorize(
    state: &AppState,
    params: &HashMap<String, String>,
    parts: &Parts,
) -> Result<(UserId, DeviceId), ApiError> {
    if state.is_draining() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "server is draining; reconnect elsewhere",
        ));
    }
    let token = token_of(parts).or_else(|| params.get("token").cloned());
    let identity = verify(state, token)?;
    let device_param = params.get("device").map(String::as_str);
    if device_param.is_some_and(|d| !is_valid_id(d)) {
        return Err(ApiError::new(ErrorCode::BadRequest, "invalid device id"));
    }
    // A token bound to a device cannot connect (and ack) as another.
    let device_id = identity
        .device_or_default(device_param)
        .map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?;
    if !state.registry.has_room_for(&identity.user_id, &device_id) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "too many devices connected for this user",
        ));
    }
    state
        .limits
        .check(LimitClass::Connects, &identity.user_id)
        .map_err(ApiError::rate_limited)?;
    Ok((identity.user_id, device_id))
}
