//! Store errors: what callers can act on (retry or not), with the backend detail kept for logs.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or refused the operation for now; retrying may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store was shut down.
    #[error("store closed")]
    Closed,
    /// A bug or corrupt data; retrying will not help.
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
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
