//! The chat-push process of the scaled-out mode: works the Redis Stream of push jobs into
//! the configured providers (APNs, FCM).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_bus::RedisBus;
use chat_ops::{ops_routes, ready_check, serve_until};
use chat_presence::RedisPresence;
use chat_store::StoreArgs;
use tokio_util::sync::CancellationToken;

use crate::{PushArgs, PushWorker, RedisPushQueue, RedisQueueConfig};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-push",
    version,
    about = "Push worker: delivers queued push jobs (scaled-out mode)"
)]
pub struct PushServiceArgs {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8083")]
    pub listen: SocketAddr,

    /// Redis holding the push queue and presence.
    #[arg(
        long,
        env = "CHAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// This worker's consumer name in the queue's group (default: push- and a random suffix).
    #[arg(long, env = "CHAT_PUSH_CONSUMER")]
    pub consumer: Option<String>,

    /// A job held this long by a worker that did not finish it is re-claimed by another.
    #[arg(long, env = "CHAT_PUSH_RECLAIM_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub reclaim_after: Duration,

    /// Log format: `text` or `json`.
    #[arg(long, env = "CHAT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    #[command(flatten)]
    pub http: chat_ops::http::HttpLimits,

    /// The store, for registered devices.
    #[command(flatten)]
    pub store: StoreArgs,

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
    let listener = chat_ops::bind(args.listen).await?;
    let store = args.store.open().await.context("open the message store")?;
    let mut queue_config = RedisQueueConfig::new(&args.redis_url, &consumer);
    queue_config.reclaim_after = args.reclaim_after;
    let queue = Arc::new(
        RedisPushQueue::connect(queue_config)
            .await
            .map_err(|e| anyhow::anyhow!("connect Redis (push queue): {e}"))?,
    );
    let bus = Arc::new(
        RedisBus::connect(&args.redis_url)
            .await
            .context("connect Redis (bus)")?,
    );
    // Only asked whether users are online; this process holds no sessions.
    let presence = RedisPresence::connect(
        &args.redis_url,
        &consumer,
        Duration::from_secs(15),
        store.clone(),
        bus,
    )
    .await
    .context("connect Redis (presence)")?;
    let providers = args
        .push
        .providers
        .build()
        .map_err(|e| anyhow::anyhow!("push providers: {e}"))?;
    let platforms: Vec<&str> = providers.iter().map(|p| p.platform().as_str()).collect();
    let worker = PushWorker::new(
        queue,
        store.clone(),
        presence,
        providers,
        args.push.policy(),
    );
    let working = tokio::spawn(worker.run(shutdown.clone()));
    tracing::info!(%consumer, ?platforms, "push worker started");
    let ready = ready_check(store.clone(), |store| async move {
        store.ping().await.map_err(|e| e.to_string())
    });
    let served = serve_until(
        "chat-push",
        listener,
        ops_routes(ready),
        &args.http,
        shutdown,
    )
    .await;
    let _ = working.await;
    served.context("serve")
}
