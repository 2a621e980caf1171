//! The `chatctl` binary: parse the command line, then hand over to the library.

use chatctl::{run, Cli};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(Cli::parse()).await
}
