//! Store failures as the contract's errors: what a client may see, and what is logged.

use chat_api::ChatError;
use chat_store::StoreError;

pub(crate) fn store_error(e: StoreError) -> ChatError {
    match e {
        StoreError::Unavailable(_) | StoreError::Closed => {
            tracing::warn!(error = %e, "store unavailable");
            ChatError::unavailable("message store unavailable, retry later")
        }
        StoreError::Conflict(detail) => {
            tracing::warn!(%detail, "seq conflict: another writer ordered this chat");
            ChatError::moved()
        }
        StoreError::Internal(detail) => {
            tracing::error!(%detail, "store error");
            ChatError::internal(detail)
        }
    }
}
