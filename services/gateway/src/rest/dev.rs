//! `POST /v1/dev/token`: demo login. Mints a token for any user who asks — only with
//! `--dev-login`, which is off by default and logs a warning when on.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use chat_api::UserId;
use chat_protocol::ids::is_valid_id;
use chat_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::limits::LimitClass;
use crate::state::AppState;

/// Lifetime of a demo token.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
pub(crate) struct DevLogin {
    user_id: String,
}

#[derive(Serialize)]
pub(crate) struct DevToken {
    token: String,
}

pub(crate) async fn token(
    State(state): State<AppState>,
    body: Result<Json<DevLogin>, JsonRejection>,
) -> Result<Json<DevToken>, ApiError> {
    let Json(body) = body?;
    if !is_valid_id(&body.user_id) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "user_id must be 1-64 characters of A-Z a-z 0-9 . _ @ -",
        ));
    }
    // Logging in as someone is a connect in all but name: it spends their connect rate.
    state.admit(LimitClass::Connects, &UserId::from(body.user_id.as_str()))?;
    let token = state
        .keys
        .mint(&body.user_id, None, DEV_TOKEN_TTL)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    Ok(Json(DevToken { token }))
}
