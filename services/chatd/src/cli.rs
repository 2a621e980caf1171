//! The command line: `chatd serve` and `chatd token`. Every setting is a flag with an env var.

use std::path::PathBuf;
use std::time::Duration;

use chat_backends::StorageArgs;
use chat_gateway::GatewayConfig;
use chat_ops::CommonArgs;
use chat_push::PushArgs;
use chat_service::ChatConfig;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chatd",
    version,
    about = "Chat backend in one process: WebSocket + REST over an embedded durable store"
)]
pub struct Cli {
    /// What to do; `serve` when omitted, so a bare `chatd` (or `cargo run`) starts the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command to run, defaulting to `serve` with settings from env and defaults.
    pub fn command_or_serve(self) -> Command {
        self.command
            .or_else(|| Cli::parse_from(["chatd", "serve"]).command)
            .expect("`serve` parses")
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Print a JWT for a user, signed with the configured (or data-dir) secret.
    Token(TokenArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// HS256 secret for client tokens. When unset, one is generated and kept in the data dir.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    #[command(flatten)]
    pub tokens: chat_auth::TokenArgs,

    /// Push jobs held in memory before new ones are dropped.
    #[arg(long, env = "CHAT_PUSH_QUEUE", default_value_t = 100_000)]
    pub push_queue: usize,

    /// The store: SQLite in the data dir by default; `--store scylla` works too.
    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub gateway: GatewayConfig,

    #[command(flatten)]
    pub chat: ChatConfig,

    #[command(flatten)]
    pub push: PushArgs,
}

impl ServeArgs {
    /// Defaults for everything, as if run with no flags, on `data_dir` and an ephemeral
    /// loopback port.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut args: ServeArgs = chat_ops::defaults_of();
        args.common.listen = Some("127.0.0.1:0".parse().expect("valid address"));
        args.storage.data_dir = data_dir.into();
        args
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The user id (the token's `sub`).
    pub user: String,

    /// Device id to put in the token's `device` claim.
    #[arg(long)]
    pub device: Option<String>,

    /// Lifetime: seconds (`3600`) or a duration (`1h`, `30m`). Every token expires: the
    /// server refuses tokens without `exp` unless told otherwise (CHAT_JWT_ALLOW_NO_EXP).
    #[arg(long, value_parser = parse_ttl, default_value = "24h")]
    pub ttl: Duration,

    /// Data directory whose generated secret to use when CHAT_JWT_SECRET is unset.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// HS256 secret; overrides the data-dir secret.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid ttl `{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_takes_seconds_or_durations() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["chatd"]).unwrap();
        assert!(matches!(cli.command_or_serve(), Command::Serve(_)));
    }

    #[test]
    fn every_flag_parses() {
        let cli = Cli::try_parse_from([
            "chatd",
            "serve",
            "--listen",
            "127.0.0.1:9000",
            "--sqlite-synchronous",
            "normal",
            "--max-frame-bytes",
            "1000",
            "--store",
            "scylla",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(args.common.listen.map(|a| a.port()), Some(9000));
        assert_eq!(
            args.storage.store.sqlite.sqlite_synchronous,
            chat_store::Synchronous::Normal
        );
        assert_eq!(args.gateway.max_frame_bytes, 1000);
        assert_eq!(args.storage.store.backend, chat_store::Backend::Scylla);
    }
}
