//! What each client frame does once admitted: validation here, the work in the chat
//! service. A request's outcome is the list of frames to write back.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use axum::extract::ws::Utf8Bytes;
use chat_api::{Caller, ChatError, HistoryQuery, SendRequest, SyncRequest, UserId};
use chat_ops::KeptCounter;
use chat_protocol::{now_ms, ClientFrame, ErrorCode, ServerFrame};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::registry::Connection;
use crate::state::AppState;
use chat_protocol::rest::MAX_PRESENCE_USERS;

/// Everything a connection's requests need.
pub(crate) struct Session {
    pub(crate) state: AppState,
    pub(crate) caller: Caller,
    pub(crate) connection: Arc<Connection>,
}

pub(crate) enum Handled {
    /// Frames to write now.
    Now(Vec<Utf8Bytes>),
    /// Frames to write when the work is done.
    Later(BoxFuture<'static, Vec<Utf8Bytes>>),
}

/// The outcome of one frame, and whether it counts as a violation.
pub(crate) struct Reply {
    pub(crate) handled: Handled,
    pub(crate) violation: bool,
}

pub(crate) fn text(frame: &ServerFrame) -> Utf8Bytes {
    frame.to_json().into()
}

pub(crate) fn error_frame(
    re: Option<String>,
    code: ErrorCode,
    message: impl Into<String>,
) -> Utf8Bytes {
    text(&ServerFrame::error(re, code, message))
}

/// The error frame for a failed request, with the chat service's retry hint if it gave one
/// (a chat that is moving or whose owner is being replaced).
fn chat_error(re: Option<String>, e: ChatError) -> Utf8Bytes {
    text(&ServerFrame::Error {
        re,
        code: e.code(),
        message: e.client_message(),
        retry_after_ms: e.retry_after_ms(),
    })
}

fn later(f: impl std::future::Future<Output = Vec<Utf8Bytes>> + Send + 'static) -> Reply {
    Reply {
        handled: Handled::Later(f.boxed()),
        violation: false,
    }
}

/// For requests whose success has no frame of its own: `ok` when asked with an id.
fn ack(re: Option<String>, result: Result<(), ChatError>) -> Vec<Utf8Bytes> {
    match (result, re) {
        (Ok(()), Some(re)) => vec![text(&ServerFrame::Ok { re })],
        (Ok(()), None) => Vec::new(),
        (Err(e), re) => vec![chat_error(re, e)],
    }
}

/// `chat_ws_frames_in_total` by frame type (`ClientFrame::KINDS`), kept: counted for every
/// frame.
static FRAMES_IN: LazyLock<[KeptCounter; ClientFrame::KINDS.len()]> = LazyLock::new(|| {
    ClientFrame::KINDS.map(|kind| KeptCounter::labelled("chat_ws_frames_in_total", "type", kind))
});

pub(crate) fn handle(session: &Arc<Session>, frame: ClientFrame) -> Reply {
    FRAMES_IN[frame.kind_index()].increment(1);
    let chat = session.state.chat.clone();
    let caller = session.caller.clone();
    match frame {
        ClientFrame::Send {
            id,
            chat_id,
            client_msg_id,
            body,
        } => {
            // Queued with the chat service now, so this connection's sends keep their order.
            let sent = chat.send(
                &caller,
                SendRequest {
                    chat_id,
                    client_msg_id,
                    body,
                },
            );
            later(async move {
                vec![match sent.await {
                    Ok(o) => text(&ServerFrame::Sent {
                        re: id,
                        chat_id: o.chat_id,
                        client_msg_id: o.client_msg_id,
                        msg_id: o.msg_id,
                        seq: o.seq,
                        ts: o.ts,
                    }),
                    Err(e) => chat_error(Some(id), e),
                }]
            })
        }
        ClientFrame::Recv { id, chat_id, seq } => {
            later(async move { ack(id, chat.mark_delivered(&caller, &chat_id, seq).await) })
        }
        ClientFrame::Read { id, chat_id, seq } => {
            later(async move { ack(id, chat.mark_read(&caller, &chat_id, seq).await) })
        }
        ClientFrame::Typing { id, chat_id } => {
            later(async move { ack(id, chat.typing(&caller, &chat_id).await) })
        }
        ClientFrame::Sync { id, cursors, limit } => later(async move {
            match chat.sync(&caller, SyncRequest { cursors, limit }).await {
                Ok(result) => {
                    let mut frames: Vec<Utf8Bytes> = result
                        .messages
                        .into_iter()
                        .map(|m| text(&ServerFrame::Msg(m)))
                        .collect();
                    frames.push(text(&ServerFrame::Synced {
                        re: id,
                        complete: result.complete,
                        chats: result.chats,
                    }));
                    frames
                }
                Err(e) => vec![chat_error(Some(id), e)],
            }
        }),
        ClientFrame::History {
            id,
            chat_id,
            before_seq,
            limit,
        } => later(async move {
            let query = HistoryQuery {
                before_seq,
                after_seq: None,
                limit,
            };
            vec![match chat.history(&caller, &chat_id, query).await {
                Ok(messages) => text(&ServerFrame::History {
                    re: id,
                    chat_id,
                    messages,
                }),
                Err(e) => chat_error(Some(id), e),
            }]
        }),
        ClientFrame::PresenceSub { id, user_ids } => {
            if user_ids.len() > MAX_PRESENCE_USERS {
                return Reply {
                    handled: Handled::Now(vec![error_frame(
                        Some(id),
                        ErrorCode::TooLarge,
                        format!("at most {MAX_PRESENCE_USERS} users"),
                    )]),
                    violation: true,
                };
            }
            let session = session.clone();
            later(async move {
                let visible: HashSet<UserId> = match chat.visible_users(&caller, &user_ids).await {
                    Ok(v) => v,
                    Err(e) => return vec![chat_error(Some(id), e)],
                };
                // Watch first, then read, so no change between the two is missed.
                let watched = session
                    .state
                    .registry
                    .watch_presence(&session.connection, &visible);
                if let Err(too_many) = watched {
                    return vec![error_frame(
                        Some(id),
                        ErrorCode::TooLarge,
                        format!("at most {} presence watches", too_many.max),
                    )];
                }
                vec![match chat.presence(&caller, &user_ids).await {
                    Ok(users) => text(&ServerFrame::Presence {
                        re: Some(id),
                        users,
                    }),
                    Err(e) => chat_error(Some(id), e),
                }]
            })
        }
        ClientFrame::Ping { id } => Reply {
            handled: Handled::Now(vec![text(&ServerFrame::Pong {
                re: id,
                ts: now_ms(),
            })]),
            violation: false,
        },
    }
}
