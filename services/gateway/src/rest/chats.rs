//! `/v1/chats`: create, list and read chats, and change group membership.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chat_api::{ChatId, CreateChat, UserId};
use chat_protocol::{Chat, ChatKind, ChatListEntry};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct CreateChatBody {
    kind: ChatKind,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    members: Vec<UserId>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    body: Result<Json<CreateChatBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Chat>), ApiError> {
    state.admit(LimitClass::ChatCreate, &caller.user_id)?;
    let Json(body) = body?;
    let request = CreateChat {
        kind: body.kind,
        title: body.title,
        members: body.members,
    };
    let created = state.chat.create_chat(&caller, request).await?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created.chat)))
}

#[derive(Serialize)]
pub(crate) struct ChatList {
    chats: Vec<ChatListEntry>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<ChatList>, ApiError> {
    state.admit(LimitClass::Reads, &caller.user_id)?;
    let chats = state.chat.list_chats(&caller).await?;
    Ok(Json(ChatList { chats }))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(chat_id): Path<ChatId>,
) -> Result<Json<Chat>, ApiError> {
    state.admit(LimitClass::Reads, &caller.user_id)?;
    Ok(Json(state.chat.get_chat(&caller, &chat_id).await?))
}

#[derive(Deserialize)]
pub(crate) struct AddMembersBody {
    user_ids: Vec<UserId>,
}

pub(crate) async fn add_members(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(chat_id): Path<ChatId>,
    body: Result<Json<AddMembersBody>, JsonRejection>,
) -> Result<Json<Chat>, ApiError> {
    state.admit(LimitClass::Members, &caller.user_id)?;
    let Json(body) = body?;
    Ok(Json(
        state
            .chat
            .add_members(&caller, &chat_id, body.user_ids)
            .await?,
    ))
}

pub(crate) async fn remove_member(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path((chat_id, user_id)): Path<(ChatId, UserId)>,
) -> Result<StatusCode, ApiError> {
    state.admit(LimitClass::Members, &caller.user_id)?;
    state
        .chat
        .remove_member(&caller, &chat_id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
