//! The `chat-gateway` binary: parse the settings, then hand over to the library.

use chat_gateway::process::{run, GatewayArgs};
use chat_ops::{cancel_on_signal, init_telemetry};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Many small allocations per message (frames, ids, replies): mimalloc serves them
/// with far less time in the allocator than the system one (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = GatewayArgs::parse();
    let _telemetry = init_telemetry("chat-gateway", args.common.log_format);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    run(args, shutdown).await
}
