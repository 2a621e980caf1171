//! `/v1/chats/{chat_id}/messages`: history, and sending with the same guarantees as WS `send`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chat_api::{ChatId, HistoryQuery, SendRequest};
use chat_protocol::rest::HistoryParams;
use chat_protocol::Message;
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

/// When the server's reply memory is spent, clients are told to come back after this.
const SHED_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Serialize)]
pub(crate) struct MessageList {
    messages: Vec<Message>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(chat_id): Path<ChatId>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<MessageList>, ApiError> {
    state.admit(LimitClass::Reads, &caller.user_id)?;
    let Query(params) = params?;
    // Held until the response is built; hyper then owns the bytes until they are sent.
    let _memory = state
        .limits
        .replies
        .try_reserve(state.chat.max_page_bytes())
        .ok_or_else(|| ApiError::busy(SHED_RETRY))?;
    let query = HistoryQuery {
        before_seq: params.before_seq,
        after_seq: params.after_seq,
        limit: params.limit,
    };
    let messages = state.chat.history(&caller, &chat_id, query).await?;
    Ok(Json(MessageList { messages }))
}

#[derive(Deserialize)]
pub(crate) struct SendBody {
    client_msg_id: String,
    body: String,
}

#[derive(Serialize)]
pub(crate) struct SentBody {
    chat_id: ChatId,
    client_msg_id: String,
    msg_id: String,
    seq: u64,
    ts: i64,
}

pub(crate) async fn send(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(chat_id): Path<ChatId>,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SentBody>), ApiError> {
    state.admit(LimitClass::Send, &caller.user_id)?;
    let Json(body) = body?;
    let request = SendRequest {
        chat_id,
        client_msg_id: body.client_msg_id,
        body: body.body,
    };
    let outcome = state.chat.send(&caller, request).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SentBody {
            chat_id: outcome.chat_id,
            client_msg_id: outcome.client_msg_id,
            msg_id: outcome.msg_id,
            seq: outcome.seq,
            ts: outcome.ts,
        }),
    ))
}
