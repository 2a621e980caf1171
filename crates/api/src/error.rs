//! The errors of the contract. Each has a kind that survives any transport, and maps to
//! one protocol error code in one place.

use std::time::Duration;

use chat_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

/// How long a client waits before retrying at a chat that was moving.
pub const MOVED_RETRY_MS: u64 = 250;
/// A partition without an owner is taken at the next lease round of a live instance (a
/// third of the lease TTL, 400 ms by default): the hint for "no owner" and for a send whose
/// chat service went away.
pub const TAKEOVER_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatError {
    #[error("{message}")]
    BadRequest { message: String },
    #[error("{message}")]
    TooLarge { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    NotFound { message: String },
    /// This instance does not (or no longer) order the chat; ask its current owner.
    #[error("{message}")]
    Moved { message: String },
    /// A backend is down or overloaded; retry, after `retry_after_ms` when given.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// Detail for the logs; clients see only "internal error".
    #[error("{message}")]
    Internal { message: String },
}

/// The kinds of `ChatError`, for metrics and wire encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    BadRequest,
    TooLarge,
    Forbidden,
    NotFound,
    Moved,
    Unavailable,
    Internal,
}

impl ChatError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ChatError::BadRequest {
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ChatError::TooLarge {
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ChatError::Forbidden {
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ChatError::NotFound {
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ChatError::Unavailable {
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Unavailable, with a hint of when it is worth retrying.
    pub fn unavailable_for(message: impl Into<String>, retry_after: Duration) -> Self {
        ChatError::Unavailable {
            message: message.into(),
            retry_after_ms: Some(retry_after.as_millis().max(1) as u64),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ChatError::Internal {
            message: message.into(),
        }
    }

    pub fn not_member() -> Self {
        ChatError::forbidden("not a member of this chat")
    }

    /// The chat's partition changed owner (or is changing): retry elsewhere.
    pub fn moved() -> Self {
        ChatError::Moved {
            message: "chat is moving to another instance, retry".into(),
        }
    }

    pub fn no_chat() -> Self {
        ChatError::not_found("no such chat")
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ChatError::BadRequest { .. } => ErrorKind::BadRequest,
            ChatError::TooLarge { .. } => ErrorKind::TooLarge,
            ChatError::Forbidden { .. } => ErrorKind::Forbidden,
            ChatError::NotFound { .. } => ErrorKind::NotFound,
            ChatError::Moved { .. } => ErrorKind::Moved,
            ChatError::Unavailable { .. } => ErrorKind::Unavailable,
            ChatError::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The protocol error code a client sees.
    pub fn code(&self) -> ErrorCode {
        match self.kind() {
            ErrorKind::BadRequest => ErrorCode::BadRequest,
            ErrorKind::TooLarge => ErrorCode::TooLarge,
            ErrorKind::Forbidden => ErrorCode::Forbidden,
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::Unavailable | ErrorKind::Moved => ErrorCode::Unavailable,
            ErrorKind::Internal => ErrorCode::Internal,
        }
    }

    /// The text a client may see: everything but internal detail.
    pub fn client_message(&self) -> String {
        match self {
            ChatError::Internal { .. } => "internal error".into(),
            other => other.to_string(),
        }
    }

    /// When the client should retry, if the error says. A chat that is moving is served
    /// by its new owner within moments.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ChatError::Unavailable { retry_after_ms, .. } => *retry_after_ms,
            ChatError::Moved { .. } => Some(MOVED_RETRY_MS),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_chat_and_a_replaced_owner_say_when_to_retry() {
        assert_eq!(ChatError::moved().retry_after_ms(), Some(MOVED_RETRY_MS));
        let gone = ChatError::unavailable_for("owner gone", TAKEOVER_RETRY);
        assert_eq!(gone.retry_after_ms(), Some(500));
        assert_eq!(ChatError::unavailable("x").retry_after_ms(), None);
        assert_eq!(ChatError::no_chat().retry_after_ms(), None);
    }

    #[test]
    fn errors_keep_their_kind_on_the_wire() {
        for error in [
            ChatError::bad_request("b"),
            ChatError::moved(),
            ChatError::unavailable_for("u", Duration::from_millis(1500)),
            ChatError::internal("secret detail"),
        ] {
            let json = serde_json::to_string(&error).unwrap();
            let back: ChatError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, error, "{json}");
        }
        assert_eq!(ChatError::moved().code(), ErrorCode::Unavailable);
        assert_eq!(ChatError::internal("x").client_message(), "internal error");
        assert_eq!(
            ChatError::unavailable_for("u", Duration::from_secs(2)).retry_after_ms(),
            Some(2000)
        );
    }
}
