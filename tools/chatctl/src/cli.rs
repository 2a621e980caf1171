//! The command line of `chatctl`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::BenchArgs;

#[derive(Debug, Parser)]
#[command(
    name = "chatctl",
    version,
    about = "Client and load tool for the chat backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a token for a user, signed with CHAT_JWT_SECRET.
    Token(TokenArgs),
    /// Create a direct chat (--with) or a group (--members); prints the chat.
    CreateChat(CreateChatArgs),
    /// Send one message and print its `sent` frame.
    Send(SendArgs),
    /// Print every message arriving for a user (optionally one chat), after a sync.
    Tail(TailArgs),
    /// Load-test gateways; see `chatctl bench --help`.
    Bench(Box<BenchArgs>),
    /// Measure this machine's limits to compare benchmarks with.
    Limits {
        #[command(subcommand)]
        limit: crate::limits::Limit,
    },
}

/// Who to act as, and where.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Gateway base URL.
    #[arg(long, env = "CHAT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The user to act as.
    #[arg(long = "as", env = "CHAT_USER")]
    pub user: String,
    /// HS256 secret tokens are minted with.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    pub user: String,
    #[arg(long)]
    pub device: Option<String>,
    /// Lifetime (`1h`, `30m`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    pub ttl: Duration,
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
}

#[derive(Debug, Args)]
pub struct CreateChatArgs {
    #[command(flatten)]
    pub target: Target,
    /// The other user of a direct chat.
    #[arg(long, conflicts_with = "members")]
    pub with: Option<String>,
    /// Members of a new group, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<String>,
    #[arg(long)]
    pub title: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: Target,
    pub chat_id: String,
    pub body: String,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub target: Target,
    /// Only this chat.
    pub chat_id: Option<String>,
}
