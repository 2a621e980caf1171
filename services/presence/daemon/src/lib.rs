//! The chat-presence process of the scaled-out mode: sweeps dead gateways' users offline
//! and records last-seen times (the one owner of them). Gateways record their own
//! sessions in Redis; this is the part no gateway can do for itself.

use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use chat_backends::{Backends, Mode, RedisArgs, StorageArgs, DEFAULT_DEDUP_WINDOW};
use chat_ops::{ops_routes, ready_check, serve_until, CommonArgs};
use tokio_util::sync::CancellationToken;

use chat_presence::{LastSeenRecorder, PresenceSweeper, StoredPrivacy};

const DEFAULT_PORT: u16 = 8082;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-presence",
    version,
    about = "Presence service: takes the users of dead gateways offline, records last seen (scaled-out mode)"
)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// How often to look for gateways whose heartbeat expired. A dead gateway's users go
    /// offline within its presence TTL plus this.
    #[arg(long, env = "CHAT_SWEEP_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,

    /// The store, for last-seen times.
    #[command(flatten)]
    pub storage: StorageArgs,
}

pub async fn run(args: PresenceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let listener = chat_ops::bind(args.common.listen_or(DEFAULT_PORT)).await?;
    let url = args.redis.redis_url.clone();
    let backends = Backends::new(
        Mode::Redis { url: url.clone() },
        Some(args.storage.settings(DEFAULT_DEDUP_WINDOW)),
    );
    let store = backends.store().await?;
    let policy = Arc::new(StoredPrivacy(store.clone()));
    let sweeper = PresenceSweeper::connect(&url, backends.bus().await?, policy)
        .await
        .context("connect Redis (presence)")?;
    let sweeping = tokio::spawn(sweeper.run(args.sweep_interval, shutdown.clone()));
    let consumer = chat_ops::instance_name("presence");
    let recorder = LastSeenRecorder::connect(&url, &consumer, store.clone())
        .await
        .context("connect Redis (last seen)")?;
    let recording = tokio::spawn(recorder.run(shutdown.clone()));
    let ready = ready_check(store.clone(), |store| async move {
        store.ping().await.map_err(|e| e.to_string())
    });
    let served = serve_until(
        "chat-presence",
        listener,
        ops_routes(ready),
        &args.common.http,
        shutdown,
    )
    .await;
    let _ = tokio::join!(sweeping, recording);
    served.context("serve")
}
