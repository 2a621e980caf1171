//! `/v1/presence`: presence of users who share a chat with the caller.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chat_protocol::{ErrorCode, PresenceEntry};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;
use crate::ws::presence_entries;

/// The most users one presence query may name.
pub(crate) const MAX_PRESENCE_USERS: usize = 500;

#[derive(Deserialize)]
pub(crate) struct PresenceParams {
    user_ids: String,
}

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
    let user_ids: Vec<String> = params
        .user_ids
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if user_ids.len() > MAX_PRESENCE_USERS {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("at most {MAX_PRESENCE_USERS} users"),
        ));
    }
    let visible = state.chat.visible_users(&caller, &user_ids).await?;
    let users = presence_entries(&state, &user_ids, &visible).await;
    Ok(Json(PresenceList { users }))
}
