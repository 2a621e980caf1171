//! Finding and checking the caller's token: `Authorization: Bearer` or `?token=`.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chat_api::Caller;
use chat_auth::{AuthError, Identity};
use chat_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// The token in the request, header first, then the `token` query parameter.
pub(crate) fn token_of(parts: &Parts) -> Option<String> {
    if let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(token.trim().to_owned());
        }
    }
    let query = axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri).ok()?;
    query.0.get("token").cloned()
}

pub(crate) fn verify(state: &AppState, token: Option<String>) -> Result<Identity, ApiError> {
    let token = token.ok_or(AuthError::Missing).map_err(unauthorized)?;
    state.keys.verify(&token).map_err(unauthorized)
}

pub(crate) fn unauthorized(e: AuthError) -> ApiError {
    metrics::counter!("chat_auth_failures_total").increment(1);
    ApiError::new(ErrorCode::Unauthorized, e.to_string())
}

/// The authenticated REST caller.
pub(crate) struct AuthUser(pub Caller);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let identity = verify(state, token_of(parts))?;
        Ok(AuthUser(Caller {
            device_id: identity.device_or_default(None).map_err(unauthorized)?,
            user_id: identity.user_id,
            session: None,
        }))
    }
}
