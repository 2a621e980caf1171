//! `/v1/blocks`: the users the caller blocks. Blocking and unblocking are idempotent
//! (204 either way), and they share the member-change rate.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chat_api::UserId;
use serde_json::{json, Value};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<Value>, ApiError> {
    state.admit(LimitClass::Reads, &caller.user_id)?;
    let blocked = state.chat.blocks(&caller).await?;
    Ok(Json(json!({ "user_ids": blocked })))
}

pub(crate) async fn block(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(user_id): Path<UserId>,
) -> Result<StatusCode, ApiError> {
    state.admit(LimitClass::Members, &caller.user_id)?;
    state.chat.block(&caller, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unblock(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(user_id): Path<UserId>,
) -> Result<StatusCode, ApiError> {
    state.admit(LimitClass::Members, &caller.user_id)?;
    state.chat.unblock(&caller, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
