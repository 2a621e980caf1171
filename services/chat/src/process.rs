//! The chat-service process of the scaled-out mode: the chat service over the shared store,
//! fanning out on Redis, ordering the partitions it leases, serving the internal API over
//! gRPC to authenticated gateways.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_api::ChatApi;
use chat_backends::{Backends, Mode, PushQueueSettings, RedisArgs, StorageArgs};
use chat_ops::{ops_routes, ready_check, serve_until, CommonArgs};
use chat_rpc::{InternalAuthArgs, RpcLimits};
use tokio_util::sync::CancellationToken;

use crate::config::ChatConfig;
use crate::lease::{LeaseConfig, PartitionLeases};
use crate::service::ChatService;

const DEFAULT_PORT: u16 = 8081;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-service",
    version,
    about = "Chat service: orders, stores and fans out messages (scaled-out mode)"
)]
pub struct ChatServiceArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// URL other processes use to reach this instance (default: http:// and the bound address).
    #[arg(long, env = "CHAT_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// Unique name of this instance (default: chat- and a random suffix).
    #[arg(long, env = "CHAT_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Partitions chats are hashed into; every instance of a cluster must agree.
    #[arg(long, env = "CHAT_PARTITIONS", default_value_t = 64)]
    pub partitions: u32,

    /// Lease time of a partition, renewed every third of it. A dead owner's chats are
    /// served again within about 1.3 of these (on SQLite; Scylla adds one more).
    #[arg(long, env = "CHAT_LEASE_TTL", default_value = "1200ms", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,

    #[command(flatten)]
    pub internal_auth: InternalAuthArgs,

    #[command(flatten)]
    pub rpc: RpcLimits,

    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub chat: ChatConfig,
}

/// Runs until `shutdown`, then releases its partitions and stops.
pub async fn run(args: ChatServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let auth = args
        .internal_auth
        .resolve()
        .context("internal authentication")?;
    let instance_id = args
        .instance_id
        .clone()
        .unwrap_or_else(|| chat_ops::instance_name("chat"));
    let listener = chat_ops::bind(args.common.listen_or(DEFAULT_PORT)).await?;
    let advertise_url = match &args.advertise_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let url = args.redis.redis_url.clone();
    let backends = Backends::new(
        Mode::Redis { url: url.clone() },
        Some(args.storage.settings(args.chat.dedup_window)),
    );
    let push = backends
        .push_queue(
            &instance_id,
            PushQueueSettings {
                capacity: 0,
                bounds: args.chat.push_bounds(),
                reclaim_after: Duration::from_secs(60),
            },
        )
        .await?;
    let store = backends.store().await?;
    let lease_config = LeaseConfig {
        instance_id: instance_id.clone(),
        advertise_url: advertise_url.clone(),
        partitions: args.partitions,
        ttl: args.lease_ttl,
        // A store that fences appends makes a stale owner harmless: no blind wait.
        takeover_wait: if store.appends_fenced() {
            Duration::ZERO
        } else {
            args.lease_ttl
        },
    };
    let leases = Arc::new(
        PartitionLeases::connect(&url, lease_config)
            .await
            .context("partition leases")?,
    );
    let chat = ChatService::start(
        args.chat.clone(),
        store,
        backends.bus().await?,
        backends.presence_view().await?,
        push,
        leases.clone(),
    );
    leases.set_barrier(chat.clone());
    tracing::info!(%instance_id, %advertise_url, partitions = args.partitions, "chat service starting");

    let maintenance = tokio::spawn(chat.clone().run_maintenance(shutdown.clone()));
    // At shutdown the partitions are handed over first, while this instance still answers
    // (`moved` for new sends, acks for accepted ones); only then does the server stop.
    let stop_serving = CancellationToken::new();
    let lease_task = {
        let (leases, shutdown, stop_serving) =
            (leases.clone(), shutdown.clone(), stop_serving.clone());
        tokio::spawn(async move {
            // Cancels when the task ends, even by a panic.
            let _stop_serving = stop_serving.drop_guard();
            leases.run(shutdown).await;
        })
    };
    let ready = ready_check(chat.clone(), |chat| async move {
        chat.ready().await.map_err(|e| e.client_message())
    });
    let api: Arc<dyn ChatApi> = chat;
    let router = chat_rpc::server::router(api, auth, args.rpc.clone(), stop_serving.clone())
        .await
        .merge(ops_routes(ready));
    let served = serve_until(
        "chat-service",
        listener,
        router,
        &args.common.http,
        stop_serving,
    )
    .await;
    let _ = tokio::join!(lease_task, maintenance);
    served.context("serve")
}
