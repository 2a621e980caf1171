//! `chatd`: the whole chat backend in one process — gateway, chat service, presence and
//! push worker wired to the embedded SQLite store and the in-process bus and queue.
#![forbid(unsafe_code)]

mod cli;
mod token;
mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chat_auth::{load_or_create_secret, JwtKeys};
use chat_bus::LocalBus;
use chat_gateway::Gateway;
use chat_presence::LocalPresence;
use chat_push::{LocalPushQueue, PushWorker};
use chat_service::{ChatService, OwnsEverything};
use chat_store::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cli::{Cli, Command, ServeArgs, TokenArgs};
pub use token::mint_token;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "chat.db";

/// A built `chatd`, bound to its port, not yet serving.
pub struct Chatd {
    listener: TcpListener,
    gateway: Gateway,
    store: Arc<SqliteStore>,
    chat: Arc<ChatService>,
    worker: PushWorker,
    shutdown: CancellationToken,
}

impl Chatd {
    /// Opens the store, wires every service and binds the listener. `shutdown` stops it.
    pub async fn build(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<Self> {
        // Install the recorder before anything counts, or early counts are lost.
        chat_ops::metrics::handle();
        let secret = resolve_secret(args.jwt_secret.clone(), &args.data_dir)?;
        let keys = JwtKeys::new(secret.as_bytes()).context("invalid JWT secret")?;
        let store_config = args.sqlite.config(args.data_dir.join(DATABASE_FILE));
        let store = Arc::new(SqliteStore::open(&store_config).context("open the message store")?);
        tracing::info!(path = %store.path().display(), synchronous = ?store_config.synchronous, "message store open");

        let bus = Arc::new(LocalBus::new());
        let presence = Arc::new(LocalPresence::new(store.clone(), bus.clone()));
        let push_queue = Arc::new(LocalPushQueue::with_bounds(
            args.push_queue,
            args.chat.push_bounds(),
        ));
        let chat = ChatService::start(
            args.chat.clone(),
            store.clone(),
            bus.clone(),
            presence.clone(),
            push_queue.clone(),
            Arc::new(OwnsEverything),
        );
        let providers = args
            .push
            .providers
            .build()
            .map_err(|e| anyhow::anyhow!("push providers: {e}"))?;
        let worker = PushWorker::new(
            push_queue,
            store.clone(),
            presence.clone(),
            providers,
            args.push.policy(),
        );
        let gateway = Gateway::new(
            args.gateway.clone(),
            chat.clone(),
            presence,
            bus,
            keys,
            shutdown.clone(),
        )
        .with_routes(web::routes());
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("bind {}", args.listen))?;
        Ok(Chatd {
            listener,
            gateway,
            store,
            chat,
            worker,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until the shutdown token is cancelled, drains, and flushes the store.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let worker = tokio::spawn(self.worker.run(self.shutdown.clone()));
        let maintenance = tokio::spawn(self.chat.clone().run_maintenance(self.shutdown.clone()));
        let served = self.gateway.serve(self.listener, "chatd").await;
        let _ = tokio::join!(worker, maintenance);
        self.store.close();
        tracing::info!("chatd stopped");
        served.context("serve")
    }
}

/// The configured secret, else the one kept in the data dir (created on first start).
fn resolve_secret(configured: Option<String>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret);
    }
    let (secret, path, created) = load_or_create_secret(data_dir).context("JWT secret file")?;
    if created {
        tracing::info!(path = %path.display(), "CHAT_JWT_SECRET not set: generated a secret; `chatd token --data-dir` uses it");
    } else {
        tracing::info!(path = %path.display(), "CHAT_JWT_SECRET not set: using the secret kept in the data dir");
    }
    Ok(secret)
}
