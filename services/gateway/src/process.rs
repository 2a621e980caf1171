//! The chat-gateway process of the scaled-out mode: the public WebSocket and REST surface,
//! calling the chat services over their internal API, receiving fan-out over Redis.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chat_auth::JwtKeys;
use chat_bus::RedisBus;
use chat_presence::RedisPresence;
use chat_service::rpc::{RemoteChat, RemoteChatConfig};
use chat_store::StoreArgs;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::server::Gateway;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-gateway",
    version,
    about = "Chat gateway: the public WebSocket + REST surface (scaled-out mode)"
)]
pub struct GatewayArgs {
    /// Address for clients (WebSocket and REST) and /healthz, /readyz, /metrics.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Redis for fan-out, presence and routing.
    #[arg(
        long,
        env = "CHAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,

    /// HS256 secret for client tokens (required: gateways share it).
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,

    /// Largest message body in bytes (checked here before it travels; same setting as chat-service).
    #[arg(long, env = "CHAT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Most message bytes in one history or sync page (same setting as chat-service).
    #[arg(long, env = "CHAT_MAX_PAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_page_bytes: usize,

    /// Groups with more members than this fan out on a group topic (same setting as chat-service).
    #[arg(long, env = "CHAT_LARGE_GROUP_MEMBERS", default_value_t = 100)]
    pub large_group_members: usize,

    /// A gateway that stops heartbeating for this long has its users taken offline.
    #[arg(long, env = "CHAT_PRESENCE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,

    /// Deadline of one call to a chat service.
    #[arg(long, env = "CHAT_INTERNAL_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub internal_timeout: Duration,

    /// Log format: `text` or `json`.
    #[arg(long, env = "CHAT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// The store, for last-seen times.
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub gateway: GatewayConfig,
}

/// Serves until `shutdown`, then drains its clients.
pub async fn run(mut args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let keys = JwtKeys::new(args.jwt_secret.as_bytes()).context("invalid JWT secret")?;
    let server_id = args
        .gateway
        .server_id
        .get_or_insert_with(|| chat_ops::instance_name("gw"))
        .clone();
    let listener = chat_ops::bind(args.listen).await?;
    let store = args.store.open().await.context("open the message store")?;
    let bus = Arc::new(
        RedisBus::connect(&args.redis_url)
            .await
            .context("connect Redis (bus)")?,
    );
    let presence = RedisPresence::connect(
        &args.redis_url,
        &server_id,
        args.presence_ttl,
        store,
        bus.clone(),
    )
    .await
    .context("connect Redis (presence)")?;
    let chat = RemoteChat::connect(RemoteChatConfig {
        redis_url: args.redis_url.clone(),
        max_body_bytes: args.max_body_bytes,
        max_page_bytes: args.max_page_bytes,
        large_group_members: args.large_group_members,
        request_timeout: args.internal_timeout,
        send_queue: 65_536,
    })
    .await
    .map_err(|e| anyhow::anyhow!("chat service client: {e}"))?;
    let heartbeat = presence.spawn_heartbeat(shutdown.clone());
    let gateway = Gateway::new(args.gateway.clone(), chat, presence, bus, keys, shutdown);
    tracing::info!(%server_id, "chat-gateway starting");
    gateway
        .serve(listener, "chat-gateway")
        .await
        .context("serve")?;
    let _ = heartbeat.await;
    Ok(())
}
