//! The `chatd` binary: parse the command line, then hand over to the library.

use chatd::{init_logging, mint_token, Chatd, Cli, Command};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command_or_serve() {
        Command::Token(args) => {
            println!("{}", mint_token(&args)?);
            Ok(())
        }
        Command::Serve(args) => {
            init_logging(&args.log_format);
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            Chatd::build(*args, shutdown)
                .await?
                .run_until_stopped()
                .await
        }
    }
}

/// SIGINT or SIGTERM starts a graceful drain.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
    shutdown.cancel();
}
