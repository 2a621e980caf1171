//! `chatctl`: a command-line client for people (mint a token, create a chat, send, tail a
//! chat) and `chatctl bench`, a load tool that speaks protocol v1 to any gateways.
#![forbid(unsafe_code)]

pub mod bench;
mod cli;
pub mod client;
mod commands;
pub mod limits;

pub use cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Token(args) => commands::token(&args),
        Command::CreateChat(args) => commands::create_chat(&args).await,
        Command::Send(args) => commands::send(&args).await,
        Command::Tail(args) => commands::tail(&args).await,
        Command::Bench(args) => bench::run(*args).await,
        Command::Limits { limit } => limits::run(limit).await,
    }
}
