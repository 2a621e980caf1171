//! The chat-gateway process of the scaled-out mode: the public WebSocket and REST surface,
//! calling the chat services over their internal gRPC API, receiving fan-out over Redis.
//! It holds no store credentials: presence goes to Redis, everything else to the chat
//! services.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_api::ContractLimits;
use chat_auth::TokenArgs;
use chat_backends::{Backends, Mode, RedisArgs};
use chat_ops::CommonArgs;
use chat_rpc::{Credentials, InternalAuthArgs, RemoteChat, RemoteChatConfig, RpcLimits};
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::privacy::ChatServicePrivacy;
use crate::server::Gateway;

const DEFAULT_PORT: u16 = 8080;
/// Sends a gateway holds for the chat services before refusing more as unavailable.
const SEND_QUEUE: usize = 65_536;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chat-gateway",
    version,
    about = "Chat gateway: the public WebSocket + REST surface (scaled-out mode)"
)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// HS256 secret for client tokens (required: gateways share it).
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,

    #[command(flatten)]
    pub tokens: TokenArgs,

    #[command(flatten)]
    pub contract: ContractLimits,

    /// A gateway that stops heartbeating for this long has its users taken offline.
    #[arg(long, env = "CHAT_PRESENCE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,

    /// Deadline of one call to a chat service.
    #[arg(long, env = "CHAT_INTERNAL_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub internal_timeout: Duration,

    /// How long a call may be tried again while its chat changes owner (a chat service
    /// handing over, dying or being replaced) before the client gets `unavailable`.
    #[arg(long, env = "CHAT_REROUTE_WINDOW", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reroute_window: Duration,

    #[command(flatten)]
    pub internal_auth: InternalAuthArgs,

    #[command(flatten)]
    pub rpc: RpcLimits,

    #[command(flatten)]
    pub gateway: GatewayConfig,
}

/// Serves until `shutdown`, then drains its clients.
pub async fn run(mut args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Install the recorder before anything counts, or early counts are lost.
    chat_ops::metrics::handle();
    let keys = args
        .tokens
        .keys(args.jwt_secret.as_bytes())
        .context("token verification settings")?;
    let auth = args
        .internal_auth
        .resolve()
        .context("internal authentication")?;
    let server_id = args
        .gateway
        .server_id
        .get_or_insert_with(|| chat_ops::instance_name("gw"))
        .clone();
    let listener = chat_ops::bind(args.common.listen_or(DEFAULT_PORT)).await?;
    // A gateway opens no store.
    let backends = Backends::new(
        Mode::Redis {
            url: args.redis.redis_url.clone(),
        },
        None,
    );
    let bus = backends.bus().await?;
    let chat = RemoteChat::connect(RemoteChatConfig {
        redis_url: args.redis.redis_url.clone(),
        max_body_bytes: args.contract.max_body_bytes,
        max_page_bytes: args.contract.max_page_bytes,
        request_timeout: args.internal_timeout,
        send_queue: SEND_QUEUE,
        reroute_window: args.reroute_window,
        limits: args.rpc.clone(),
        credentials: Credentials::new(auth, &server_id),
    })
    .await
    .context("chat service client")?;
    // Presence frames carry a user's last seen unless the chat service says they hide it.
    let policy = Arc::new(ChatServicePrivacy(chat.clone()));
    let sessions = backends
        .sessions(&server_id, args.presence_ttl, shutdown.clone(), policy)
        .await?;
    let gateway = Gateway::new(args.gateway.clone(), chat, sessions, bus, keys, shutdown);
    tracing::info!(%server_id, "chat-gateway starting");
    gateway
        .serve(listener, "chat-gateway", &args.common.http)
        .await
        .context("serve")?;
    backends.stopped().await;
    Ok(())
}
