//! The chat-presence process of the scaled-out mode: sweeps dead gateways' users offline.
//! (Gateways record their own sessions in Redis; this is the part no gateway can do for
//! itself — notice that another one died.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_bus::RedisBus;
use chat_ops::{ops_routes, ready_check, serve_until};
use chat_store::StoreArgs;
use tokio_util::sync::CancellationToken;

use crate::PresenceSweeper;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-presence",
    version,
    about = "Presence service: takes the users of dead gateways offline (scaled-out mode)"
)]
pub struct PresenceArgs {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8082")]
    pub listen: SocketAddr,

    /// Redis holding presence.
    #[arg(
        long,
        env = "CHAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// How often to look for gateways whose heartbeat expired. A dead gateway's users go
    /// offline within its presence TTL plus this.
    #[arg(long, env = "CHAT_SWEEP_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,

    /// Log format: `text` or `json`.
    #[arg(long, env = "CHAT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    #[command(flatten)]
    pub http: chat_ops::http::HttpLimits,

    /// The store, for last-seen times.
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(args: PresenceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let listener = chat_ops::bind(args.listen).await?;
    let store = args.store.open().await.context("open the message store")?;
    let bus = Arc::new(
        RedisBus::connect(&args.redis_url)
            .await
            .context("connect Redis (bus)")?,
    );
    let sweeper = PresenceSweeper::connect(&args.redis_url, store.clone(), bus)
        .await
        .context("connect Redis (presence)")?;
    let sweeping = tokio::spawn(sweeper.run(args.sweep_interval, shutdown.clone()));
    let ready = ready_check(store.clone(), |store| async move {
        store.ping().await.map_err(|e| e.to_string())
    });
    let served = serve_until(
        "chat-presence",
        listener,
        ops_routes(ready),
        &args.http,
        shutdown,
    )
    .await;
    let _ = sweeping.await;
    served.context("serve")
}
