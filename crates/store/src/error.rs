//! Store errors: what callers can act on (retry or not), with the backend detail kept for logs.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or refused the operation for now; retrying may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store was shut down.
    #[error("store closed")]
    Closed,
    /// The write found a different message already at one of its (chat, seq): another
    /// writer assigned that seq. The writer's idea of the chat's head is stale.
    #[error("seq conflict: {0}")]
    Conflict(String),
    /// A bug or corrupt data; retrying will not help.
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Raised inside a write job when (chat, seq) holds another message; rolls the job back.
/// It travels as `ToSqlConversionFailure`, the one rusqlite error that carries any error.
#[derive(Debug)]
pub(crate) struct SeqConflict(pub(crate) String);

impl std::fmt::Display for SeqConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SeqConflict {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::ToSqlConversionFailure(inner) if inner.is::<SeqConflict>() => {
                StoreError::Conflict(inner.to_string())
            }
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure
                ) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Internal(e.to_string()),
        }
    }
}
