//! The `chatd` binary: parse the command line, then hand over to the library.

use chat_ops::{cancel_on_signal, init_telemetry};
use chatd::{mint_token, Chatd, Cli, Command};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Many small allocations per message (frames, ids, replies): mimalloc serves them
/// with far less time in the allocator than the system one (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command_or_serve() {
        Command::Token(args) => {
            println!("{}", mint_token(&args)?);
            Ok(())
        }
        Command::Serve(args) => {
            let _telemetry = init_telemetry("chatd", args.common.log_format);
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            Chatd::build(*args, shutdown)
                .await?
                .run_until_stopped()
                .await
        }
    }
}
