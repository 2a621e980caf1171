//! `chatctl limits`: the physical limits the benchmarks are compared with, measured on the
//! same machine — how fast this disk makes a write durable, and how fast a bare WebSocket
//! relay with no persistence moves messages (run `bench direct` against `limits relay`),
//! or with nothing but an fsynced log.

mod durable_log;
mod fsync;
mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Limit {
    /// fsync latency of small appends in DIR (the floor under a durable ack).
    Fsync {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
    /// A WebSocket relay with no persistence and no ordering work, speaking enough of
    /// protocol v1 for `bench direct` and `bench group`.
    Relay {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Ack and forward each message only once it is appended to DIR/relay.log (64 MiB,
        /// written in place round and round) and fdatasynced, group-committed.
        #[arg(long, value_name = "DIR")]
        durable_dir: Option<PathBuf>,
    },
}

pub async fn run(limit: Limit) -> anyhow::Result<()> {
    match limit {
        Limit::Fsync { dir, count } => fsync::run(&dir, count),
        Limit::Relay {
            listen,
            durable_dir,
        } => relay::run(listen, durable_dir.as_deref()).await,
    }
}
