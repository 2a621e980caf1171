//! Store settings as command-line flags (with env vars), shared by every service binary
//! that opens the message store: which backend, and its settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use scylla::statement::Consistency;

use crate::{
    MessageStore, ScyllaConfig, ScyllaStore, ScyllaTls, SqliteConfig, SqliteStore, StoreError,
    StoreResult, Synchronous,
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

    /// Path of the SQLite database (default: `chat.db` in the data directory, `./data`).
    /// Processes on one host may share it (WAL mode).
    #[arg(long, env = "CHAT_SQLITE_PATH")]
    pub sqlite_path: Option<PathBuf>,

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

    /// Scylla username, for clusters with authentication on (with `CHAT_SCYLLA_PASSWORD`).
    #[arg(long, env = "CHAT_SCYLLA_USERNAME", requires = "scylla_password")]
    pub scylla_username: Option<String>,

    /// Scylla password (prefer the env var, from a secret, to the flag).
    #[arg(
        long,
        env = "CHAT_SCYLLA_PASSWORD",
        hide_env_values = true,
        requires = "scylla_username"
    )]
    pub scylla_password: Option<String>,

    /// Talk TLS to every Scylla node, trusting the system's CAs (and `CHAT_SCYLLA_CA_FILE`).
    #[arg(long, env = "CHAT_SCYLLA_TLS", default_value_t = false)]
    pub scylla_tls: bool,

    /// PEM file of the CA that issued the nodes' certificates (implies `CHAT_SCYLLA_TLS`).
    #[arg(long, env = "CHAT_SCYLLA_CA_FILE")]
    pub scylla_ca_file: Option<PathBuf>,
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

    /// Appended messages kept in the recent table (cheap to append to, scanned by reads of
    /// recent messages) before the writer settles them into the per-chat table.
    #[arg(long, env = "CHAT_SQLITE_SETTLE_AFTER", default_value_t = 1024)]
    pub sqlite_settle_after: usize,
}

impl Default for SqliteArgs {
    fn default() -> Self {
        defaults_of()
    }
}

impl SqliteArgs {
    /// The store's settings for the database at `path`.
    pub fn config(&self, path: impl Into<PathBuf>) -> SqliteConfig {
        let mut config = SqliteConfig::new(path);
        config.synchronous = self.sqlite_synchronous;
        config.read_concurrency = self.sqlite_read_concurrency;
        config.write_queue = self.sqlite_write_queue;
        config.settle_after = self.sqlite_settle_after;
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

/// The SQLite file in a data directory.
pub const SQLITE_FILE: &str = "chat.db";

impl Default for StoreArgs {
    fn default() -> Self {
        defaults_of()
    }
}

/// Settings as if no flag were given: each default is written once, on its flag. (The
/// store does not depend on chat-ops, whose `defaults_of` does the same.)
fn defaults_of<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = command
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("every store setting has a default");
    T::from_arg_matches(&matches).expect("defaults parse")
}

impl StoreArgs {
    /// The SQLite file: the configured path, else `chat.db` in `data_dir`.
    pub fn sqlite_path_in(&self, data_dir: &Path) -> PathBuf {
        self.sqlite_path
            .clone()
            .unwrap_or_else(|| data_dir.join(SQLITE_FILE))
    }

    /// Opens the configured backend (SQLite files under `data_dir` unless a path is
    /// configured); `dedup_window` sets how long Scylla keeps dedup entries (plus an hour).
    pub async fn open(
        &self,
        data_dir: &Path,
        dedup_window: Duration,
    ) -> StoreResult<Arc<dyn MessageStore>> {
        match self.backend {
            Backend::Sqlite => Ok(Arc::new(SqliteStore::open(
                &self.sqlite.config(self.sqlite_path_in(data_dir)),
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
                config.credentials = self
                    .scylla_username
                    .clone()
                    .zip(self.scylla_password.clone());
                if self.scylla_tls || self.scylla_ca_file.is_some() {
                    config.tls = Some(ScyllaTls {
                        ca_file: self.scylla_ca_file.clone(),
                    });
                }
                Ok(Arc::new(ScyllaStore::connect(config).await?))
            }
        }
    }
}
