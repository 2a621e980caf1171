//! Store settings as command-line flags (with env vars), shared by every service binary
//! that opens the message store: which backend, and its settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scylla::statement::Consistency;

use crate::{
    MessageStore, ScyllaConfig, ScyllaStore, SqliteConfig, SqliteStore, StoreError, StoreResult,
    Synchronous,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// One SQLite file, shared by the processes of one host.
    Sqlite,
    /// A ScyllaDB or Cassandra cluster.
    Scylla,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Which message store to use.
    #[arg(
        long = "store",
        env = "CHAT_STORE",
        value_enum,
        default_value = "sqlite"
    )]
    pub backend: Backend,

    /// Path of the SQLite database. Processes on one host may share it (WAL mode).
    #[arg(long, env = "CHAT_SQLITE_PATH", default_value = "./data/chat.db")]
    pub sqlite_path: PathBuf,

    #[command(flatten)]
    pub sqlite: SqliteArgs,

    /// Scylla/Cassandra contact points, comma-separated `host:port`.
    #[arg(
        long,
        env = "CHAT_SCYLLA_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:9042"
    )]
    pub scylla_nodes: Vec<String>,

    /// Keyspace of the Scylla store (created with the schema if missing).
    #[arg(long, env = "CHAT_SCYLLA_KEYSPACE", default_value = "chat")]
    pub scylla_keyspace: String,

    /// Replication factor the keyspace is created with (NetworkTopologyStrategy).
    #[arg(long, env = "CHAT_SCYLLA_REPLICATION_FACTOR", default_value_t = 3)]
    pub scylla_replication_factor: u32,

    /// Consistency level of every read and write: `local_quorum` (default), `quorum`, `one`…
    #[arg(long, env = "CHAT_SCYLLA_CONSISTENCY", default_value = "local_quorum", value_parser = parse_consistency)]
    pub scylla_consistency: Consistency,

    /// Deadline of one Scylla request.
    #[arg(long, env = "CHAT_SCYLLA_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scylla_timeout: Duration,

    /// Messages per Scylla partition of a chat; fixed for the life of a keyspace.
    #[arg(long, env = "CHAT_SCYLLA_BUCKET_SIZE", default_value_t = 10_000)]
    pub scylla_bucket_size: u64,
}

/// Settings of the embedded SQLite store, shared by `chatd` and the services.
#[derive(Debug, Clone, clap::Args)]
pub struct SqliteArgs {
    /// SQLite durability: `full` fsyncs every commit (acked = survives power loss);
    /// `normal` survives a process crash only.
    #[arg(long, env = "CHAT_SQLITE_SYNCHRONOUS", default_value = "full")]
    pub sqlite_synchronous: Synchronous,

    /// Store reads running at once; more wait (without a thread) for a free slot.
    #[arg(long, env = "CHAT_SQLITE_READ_CONCURRENCY", default_value_t = 8)]
    pub sqlite_read_concurrency: usize,

    /// Write jobs queued for the writer thread before writers wait for room.
    #[arg(long, env = "CHAT_SQLITE_WRITE_QUEUE", default_value_t = 16_384)]
    pub sqlite_write_queue: usize,
}

impl Default for SqliteArgs {
    fn default() -> Self {
        SqliteArgs {
            sqlite_synchronous: Synchronous::Full,
            sqlite_read_concurrency: 8,
            sqlite_write_queue: 16_384,
        }
    }
}

impl SqliteArgs {
    /// The store's settings for the database at `path`.
    pub fn config(&self, path: impl Into<PathBuf>) -> SqliteConfig {
        let mut config = SqliteConfig::new(path);
        config.synchronous = self.sqlite_synchronous;
        config.read_concurrency = self.sqlite_read_concurrency;
        config.write_queue = self.sqlite_write_queue;
        config
    }
}

fn parse_consistency(s: &str) -> Result<Consistency, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        other => return Err(format!("unknown consistency `{other}`")),
    })
}

impl StoreArgs {
    /// Opens the configured backend, for processes that do not write messages.
    pub async fn open(&self) -> StoreResult<Arc<dyn MessageStore>> {
        self.open_with_dedup_window(Duration::from_secs(24 * 3600))
            .await
    }

    /// Opens the configured backend; `dedup_window` sets how long Scylla keeps dedup
    /// entries (the window plus an hour).
    pub async fn open_with_dedup_window(
        &self,
        dedup_window: Duration,
    ) -> StoreResult<Arc<dyn MessageStore>> {
        match self.backend {
            Backend::Sqlite => Ok(Arc::new(SqliteStore::open(
                &self.sqlite.config(&self.sqlite_path),
            )?)),
            Backend::Scylla => {
                if self.scylla_nodes.is_empty() {
                    return Err(StoreError::Internal("CHAT_SCYLLA_NODES is empty".into()));
                }
                let mut config =
                    ScyllaConfig::new(self.scylla_nodes.clone(), &self.scylla_keyspace);
                config.replication_factor = self.scylla_replication_factor;
                config.consistency = self.scylla_consistency;
                config.request_timeout = self.scylla_timeout;
                config.bucket_size = self.scylla_bucket_size;
                config.dedup_ttl = dedup_window + Duration::from_secs(3600);
                Ok(Arc::new(ScyllaStore::connect(config).await?))
            }
        }
    }
}
