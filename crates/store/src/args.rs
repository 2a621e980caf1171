//! Store settings as command-line flags (with env vars), shared by every binary that opens
//! the message store.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{MessageStore, SqliteConfig, SqliteStore, StoreResult, Synchronous};

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Path of the SQLite database. Processes on one host may share it (WAL mode).
    #[arg(long, env = "CHAT_SQLITE_PATH", default_value = "./data/chat.db")]
    pub sqlite_path: PathBuf,

    /// SQLite durability: `full` fsyncs every commit (acked = survives power loss);
    /// `normal` survives a process crash only.
    #[arg(long, env = "CHAT_SQLITE_SYNCHRONOUS", default_value = "full")]
    pub sqlite_synchronous: Synchronous,
}

impl StoreArgs {
    pub fn open(&self) -> StoreResult<Arc<SqliteStore>> {
        let mut config = SqliteConfig::new(&self.sqlite_path);
        config.synchronous = self.sqlite_synchronous;
        Ok(Arc::new(SqliteStore::open(&config)?))
    }

    /// The store as the trait object the services take.
    pub fn open_dyn(&self) -> StoreResult<Arc<dyn MessageStore>> {
        Ok(self.open()?)
    }
}
