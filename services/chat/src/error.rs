//! The chat service's error type, mapped to protocol error codes in one place.

use chat_protocol::ErrorCode;
use chat_store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// This instance does not (or no longer) order the chat; ask its current owner.
    #[error("{0}")]
    Moved(String),
    /// A backend is down or overloaded; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// Detail for the logs; clients see only "internal error".
    #[error("{0}")]
    Internal(String),
}

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::BadRequest(_) => ErrorCode::BadRequest,
            ChatError::TooLarge(_) => ErrorCode::TooLarge,
            ChatError::Forbidden(_) => ErrorCode::Forbidden,
            ChatError::NotFound(_) => ErrorCode::NotFound,
            ChatError::Unavailable(_) | ChatError::Moved(_) => ErrorCode::Unavailable,
            ChatError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The text a client may see: everything but internal detail.
    pub fn client_message(&self) -> String {
        match self {
            ChatError::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    pub(crate) fn not_member() -> Self {
        ChatError::Forbidden("not a member of this chat".into())
    }

    pub(crate) fn moved() -> Self {
        ChatError::Moved("chat is moving to another instance, retry".into())
    }

    pub(crate) fn no_chat() -> Self {
        ChatError::NotFound("no such chat".into())
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Closed => {
                tracing::warn!(error = %e, "store unavailable");
                ChatError::Unavailable("message store unavailable, retry later".into())
            }
            StoreError::Conflict(detail) => {
                tracing::warn!(%detail, "seq conflict: another writer ordered this chat");
                ChatError::moved()
            }
            StoreError::Internal(detail) => {
                tracing::error!(%detail, "store error");
                ChatError::Internal(detail)
            }
        }
    }
}
