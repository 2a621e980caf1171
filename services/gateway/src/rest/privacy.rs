//! `/v1/me/privacy`: the caller's privacy settings (who sees their last seen).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chat_protocol::PrivacySettings;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

pub(crate) async fn get(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<Json<PrivacySettings>, ApiError> {
    state.admit(LimitClass::Reads, &caller.user_id)?;
    Ok(Json(state.chat.privacy(&caller).await?))
}

pub(crate) async fn set(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    body: Result<Json<PrivacySettings>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    state.admit(LimitClass::Members, &caller.user_id)?;
    let Json(settings) = body?;
    state.chat.set_privacy(&caller, settings).await?;
    Ok(StatusCode::NO_CONTENT)
}
