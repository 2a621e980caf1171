//! `/v1/presence`: presence of users who share a chat with the caller.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chat_api::UserId;
use chat_protocol::rest::{PresenceParams, MAX_PRESENCE_USERS};
use chat_protocol::{ErrorCode, PresenceEntry};
use serde::Serialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

#[derive(Serialize)]
pub(crate) struct PresenceList {
    users: Vec<PresenceEntry>,
}

pub(crate) async fn query(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    params: Result<Query<PresenceParams>, QueryRejection>,
) -> Result<Json<PresenceList>, ApiError> {
    state.admit(LimitClass::Presence, &caller.user_id)?;
    let Query(params) = params?;
    let user_ids = params.user_ids();
    if user_ids.len() > MAX_PRESENCE_USERS {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("at most {MAX_PRESENCE_USERS} users"),
        ));
    }
    let user_ids: Vec<UserId> = user_ids.into_iter().map(UserId::from).collect();
    let users = state.chat.presence(&caller, &user_ids).await?;
    Ok(Json(PresenceList { users }))
}
