//! The chat-service process of the scaled-out mode: the chat service over the shared store,
//! fanning out on Redis, ordering the partitions it leases, serving the internal API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_bus::RedisBus;
use chat_ops::{ops_routes, ready_check, serve_until};
use chat_presence::RedisPresence;
use chat_push::{RedisPushQueue, RedisQueueConfig};
use chat_store::StoreArgs;
use tokio_util::sync::CancellationToken;

use crate::api::ChatApi;
use crate::config::ChatConfig;
use crate::lease::{LeaseConfig, PartitionLeases};
use crate::rpc::rpc_routes;
use crate::service::ChatService;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-service",
    version,
    about = "Chat service: orders, stores and fans out messages (scaled-out mode)"
)]
pub struct ChatServiceArgs {
    /// Address of the internal API (gateways call it) and of /healthz, /readyz, /metrics.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// URL other processes use to reach this instance (default: http:// and the bound address).
    #[arg(long, env = "CHAT_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Redis for fan-out, presence, push queue and partition leases.
    #[arg(
        long,
        env = "CHAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// Unique name of this instance (default: chat- and a random suffix).
    #[arg(long, env = "CHAT_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Partitions chats are hashed into; every instance of a cluster must agree.
    #[arg(long, env = "CHAT_PARTITIONS", default_value_t = 64)]
    pub partitions: u32,

    /// Lease time of a partition. Failover takes up to two of these.
    #[arg(long, env = "CHAT_LEASE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,

    /// Log format: `text` or `json`.
    #[arg(long, env = "CHAT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    #[command(flatten)]
    pub http: chat_ops::http::HttpLimits,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub chat: ChatConfig,
}

/// Runs until `shutdown`, then releases its partitions and stops.
pub async fn run(args: ChatServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let instance_id = args
        .instance_id
        .clone()
        .unwrap_or_else(|| chat_ops::instance_name("chat"));
    let listener = chat_ops::bind(args.listen).await?;
    let advertise_url = match &args.advertise_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let store = args
        .store
        .open_with_dedup_window(args.chat.dedup_window)
        .await
        .context("open the message store")?;
    let bus = Arc::new(
        RedisBus::connect(&args.redis_url)
            .await
            .context("connect Redis (bus)")?,
    );
    let presence = RedisPresence::connect(
        &args.redis_url,
        &instance_id,
        args.lease_ttl,
        store.clone(),
        bus.clone(),
    )
    .await
    .context("connect Redis (presence)")?;
    let mut push_config = RedisQueueConfig::new(&args.redis_url, &instance_id);
    push_config.bounds = args.chat.push_bounds();
    let push = Arc::new(
        RedisPushQueue::connect(push_config)
            .await
            .map_err(|e| anyhow::anyhow!("connect Redis (push queue): {e}"))?,
    );
    let lease_config = LeaseConfig {
        instance_id: instance_id.clone(),
        advertise_url: advertise_url.clone(),
        partitions: args.partitions,
        ttl: args.lease_ttl,
    };
    let leases = Arc::new(
        PartitionLeases::connect(&args.redis_url, lease_config)
            .await
            .map_err(|e| anyhow::anyhow!("partition leases: {e}"))?,
    );
    let chat = ChatService::start(
        args.chat.clone(),
        store,
        bus,
        presence,
        push,
        leases.clone(),
    );
    tracing::info!(%instance_id, %advertise_url, partitions = args.partitions, "chat service starting");

    let maintenance = tokio::spawn(chat.clone().run_maintenance(shutdown.clone()));
    let lease_task = {
        let (leases, shutdown) = (leases.clone(), shutdown.clone());
        tokio::spawn(async move { leases.run(shutdown).await })
    };
    let ready = ready_check(chat.clone(), |chat| async move {
        chat.ready().await.map_err(|e| e.client_message())
    });
    let router = rpc_routes(chat.clone()).merge(ops_routes(ready));
    let served = serve_until("chat-service", listener, router, &args.http, shutdown).await;
    let _ = tokio::join!(lease_task, maintenance);
    served.context("serve")
}
