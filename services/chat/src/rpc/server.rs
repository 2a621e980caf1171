//! Serving the internal API over a `ChatApi` (the chat-service process wires its
//! `ChatService` here).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::future::join_all;

use super::wire::{Answer, Call, SendItem, SendResult, WireError, CALL_PATH, SEND_BATCH_PATH};
use crate::api::ChatApi;
use crate::error::ChatError;

/// The largest internal request: a full send batch of the largest bodies, JSON-escaped.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

pub fn rpc_routes(chat: Arc<dyn ChatApi>) -> Router {
    Router::new()
        .route(CALL_PATH, post(call))
        .route(SEND_BATCH_PATH, post(send_batch))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(chat)
}

async fn call(
    State(chat): State<Arc<dyn ChatApi>>,
    Json(call): Json<Call>,
) -> Json<Result<Answer, WireError>> {
    Json(execute(chat.as_ref(), call).await.map_err(WireError::from))
}

/// Queues every send of the batch in order (so their seqs keep it), then awaits them all.
async fn send_batch(
    State(chat): State<Arc<dyn ChatApi>>,
    Json(items): Json<Vec<SendItem>>,
) -> Json<Vec<SendResult>> {
    let pending: Vec<_> = items
        .into_iter()
        .map(|item| chat.send(&item.caller, item.request))
        .collect();
    let results = join_all(pending).await;
    Json(
        results
            .into_iter()
            .map(|r| r.map_err(WireError::from))
            .collect(),
    )
}

async fn execute(chat: &dyn ChatApi, call: Call) -> Result<Answer, ChatError> {
    Ok(match call {
        Call::CreateChat { caller, request } => {
            let (chat, created) = chat.create_chat(&caller, request).await?;
            Answer::Created { chat, created }
        }
        Call::ListChats { caller } => Answer::Chats(chat.list_chats(&caller).await?),
        Call::GetChat { caller, chat_id } => Answer::Chat(chat.get_chat(&caller, &chat_id).await?),
        Call::AddMembers {
            caller,
            chat_id,
            user_ids,
        } => Answer::Chat(chat.add_members(&caller, &chat_id, user_ids).await?),
        Call::RemoveMember {
            caller,
            chat_id,
            user_id,
        } => {
            chat.remove_member(&caller, &chat_id, &user_id).await?;
            Answer::Done
        }
        Call::History {
            caller,
            chat_id,
            query,
        } => Answer::Messages(chat.history(&caller, &chat_id, query).await?),
        Call::Sync {
            caller,
            cursors,
            limit,
        } => Answer::Synced(chat.sync(&caller, cursors, limit).await?),
        Call::MarkDelivered {
            caller,
            chat_id,
            seq,
        } => {
            chat.mark_delivered(&caller, &chat_id, seq).await?;
            Answer::Done
        }
        Call::MarkRead {
            caller,
            chat_id,
            seq,
        } => {
            chat.mark_read(&caller, &chat_id, seq).await?;
            Answer::Done
        }
        Call::Typing { caller, chat_id } => {
            chat.typing(&caller, &chat_id).await?;
            Answer::Done
        }
        Call::VisibleUsers { caller, user_ids } => {
            Answer::Users(chat.visible_users(&caller, &user_ids).await?)
        }
        Call::RegisterDevice {
            caller,
            device_id,
            platform,
            token,
        } => {
            chat.register_device(&caller, &device_id, platform, &token)
                .await?;
            Answer::Done
        }
        Call::UnregisterDevice { caller, device_id } => {
            Answer::Existed(chat.unregister_device(&caller, &device_id).await?)
        }
        Call::LargeGroups { caller } => Answer::ChatIds(chat.large_groups(&caller).await?),
        Call::Ready => {
            chat.ready().await?;
            Answer::Done
        }
    })
}
