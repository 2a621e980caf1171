//! `/v1/devices`: push token registration.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chat_api::DeviceId;
use chat_protocol::{ErrorCode, PushPlatform};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct RegisterBody {
    device_id: DeviceId,
    platform: PushPlatform,
    token: String,
}

pub(crate) async fn register(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    body: Result<Json<RegisterBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    state.admit(LimitClass::Devices, &caller.user_id)?;
    let Json(body) = body?;
    state
        .chat
        .register_device(&caller, &body.device_id, body.platform, &body.token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn unregister(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(device_id): Path<DeviceId>,
) -> Result<StatusCode, ApiError> {
    state.admit(LimitClass::Devices, &caller.user_id)?;
    if state.chat.unregister_device(&caller, &device_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(ErrorCode::NotFound, "no such device"))
    }
}
