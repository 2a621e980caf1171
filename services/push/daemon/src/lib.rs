//! The chat-push process of the scaled-out mode: works the Redis Stream of push jobs into
//! the configured providers (APNs, FCM).

use std::time::Duration;

use anyhow::Context;
use chat_backends::{
    Backends, Mode, PushQueueSettings, RedisArgs, StorageArgs, DEFAULT_DEDUP_WINDOW,
};
use chat_ops::{ops_routes, ready_check, serve_until, CommonArgs};
use chat_push::{PushArgs, PushPolicy, PushWorker, QueueBounds};
use tokio_util::sync::CancellationToken;

const DEFAULT_PORT: u16 = 8083;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-push",
    version,
    about = "Push worker: delivers queued push jobs (scaled-out mode)"
)]
pub struct PushServiceArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// This worker's consumer name in the queue's group (default: push- and a random suffix).
    #[arg(long, env = "CHAT_PUSH_CONSUMER")]
    pub consumer: Option<String>,

    /// A job held this long by a worker that did not finish it is re-claimed by another.
    #[arg(long, env = "CHAT_PUSH_RECLAIM_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub reclaim_after: Duration,

    /// The store, for registered devices and unread counts.
    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub push: PushArgs,
}

pub async fn run(args: PushServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let consumer = args
        .consumer
        .clone()
        .unwrap_or_else(|| chat_ops::instance_name("push"));
    let listener = chat_ops::bind(args.common.listen_or(DEFAULT_PORT)).await?;
    let backends = Backends::new(
        Mode::Redis {
            url: args.redis.redis_url.clone(),
        },
        Some(args.storage.settings(DEFAULT_DEDUP_WINDOW)),
    );
    let store = backends.store().await?;
    let queue = backends
        .push_queue(
            &consumer,
            PushQueueSettings {
                // The worker takes jobs; what bounds them is set where they are queued.
                capacity: 0,
                bounds: QueueBounds::default(),
                reclaim_after: args.reclaim_after,
            },
        )
        .await?;
    // Only asked whether users are online; this process holds no sessions.
    let presence = backends.presence_view().await?;
    let providers = args
        .push
        .providers
        .build()
        .await
        .context("push providers")?;
    let platforms: Vec<&str> = providers.iter().map(|p| p.platform().as_str()).collect();
    let policy = PushPolicy {
        // Kept four times per re-claim period: a live worker's job is never re-claimed.
        keep_claim_every: args.reclaim_after / 4,
        ..args.push.policy()
    };
    let worker = PushWorker::new(queue, store.clone(), presence, providers, policy);
    let working = tokio::spawn(worker.run(shutdown.clone()));
    tracing::info!(%consumer, ?platforms, "push worker started");
    let ready = ready_check(store.clone(), |store| async move {
        store.ping().await.map_err(|e| e.to_string())
    });
    let served = serve_until(
        "chat-push",
        listener,
        ops_routes(ready),
        &args.common.http,
        shutdown,
    )
    .await;
    let _ = working.await;
    served.context("serve")
}
