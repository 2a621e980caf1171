//! HTTP errors: every failure becomes `{"error":{"code","message"}}` with its status, here
//! and nowhere else.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_api::ChatError;
use chat_protocol::ErrorCode;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// 429 with `Retry-After`: the caller is over a rate for `wait` more.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        ApiError {
            code: ErrorCode::RateLimited,
            message: "too many requests".into(),
            retry_after_ms: Some(wait.as_millis().max(1) as u64),
        }
    }

    /// 503 with `Retry-After`: the server sheds load.
    pub fn busy(retry: std::time::Duration) -> Self {
        ApiError {
            code: ErrorCode::Unavailable,
            message: "server busy, retry later".into(),
            retry_after_ms: Some(retry.as_millis().max(1) as u64),
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        ApiError {
            retry_after_ms: e.retry_after_ms(),
            ..ApiError::new(e.code(), e.client_message())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::TooLarge
        } else {
            ErrorCode::BadRequest
        };
        ApiError::new(code, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::new(ErrorCode::BadRequest, e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (status, Json(body)).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
