//! `chatd`: the whole chat backend in one process — gateway, chat service, presence and
//! push worker wired to the store (embedded SQLite by default) and the in-process bus and
//! queue, through the same composition root as the scaled-out services.
#![forbid(unsafe_code)]

mod cli;
mod token;
mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chat_auth::load_or_create_secret;
use chat_backends::{Backends, Mode, PushQueueSettings};
use chat_gateway::Gateway;
use chat_ops::http::HttpLimits;
use chat_push::PushWorker;
use chat_service::{ChatService, OwnsEverything};
use chat_store::MessageStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cli::{Cli, Command, ServeArgs, TokenArgs};
pub use token::mint_token;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = chat_store::SQLITE_FILE;

const DEFAULT_PORT: u16 = 8080;

/// A built `chatd`, bound to its port, not yet serving.
pub struct Chatd {
    listener: TcpListener,
    http: HttpLimits,
    gateway: Gateway,
    store: Arc<dyn MessageStore>,
    chat: Arc<ChatService>,
    worker: PushWorker,
    shutdown: CancellationToken,
}

impl Chatd {
    /// Opens the store, wires every service and binds the listener. `shutdown` stops it.
    pub async fn build(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<Self> {
        // Install the recorder before anything counts, or early counts are lost.
        chat_ops::metrics::handle();
        let secret = resolve_secret(args.jwt_secret.clone(), &args.storage.data_dir)?;
        let keys = args
            .tokens
            .keys(secret.as_bytes())
            .context("token verification settings")?;
        let backends = Backends::new(
            Mode::Local,
            Some(args.storage.settings(args.chat.dedup_window)),
        );
        let store = backends.store().await?;
        tracing::info!(store = ?args.storage.store.backend, data_dir = %args.storage.data_dir.display(), "message store open");
        let bus = backends.bus().await?;
        let presence = backends.presence_view().await?;
        let push_queue = backends
            .push_queue(
                "chatd",
                PushQueueSettings {
                    capacity: args.push_queue,
                    bounds: args.chat.push_bounds(),
                    reclaim_after: std::time::Duration::ZERO,
                },
            )
            .await?;
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
            .await
            .context("push providers")?;
        let worker = PushWorker::new(
            push_queue,
            store.clone(),
            presence,
            providers,
            args.push.policy(),
        );
        // In process the presence reads privacy settings from the store itself.
        let policy = Arc::new(chat_presence::StoredPrivacy(store.clone()));
        let sessions = backends
            .sessions("chatd", std::time::Duration::ZERO, shutdown.clone(), policy)
            .await?;
        let gateway = Gateway::new(
            args.gateway.clone(),
            chat.clone(),
            sessions,
            bus,
            keys,
            shutdown.clone(),
        )
        .with_routes(web::routes());
        let listener = chat_ops::bind(args.common.listen_or(DEFAULT_PORT)).await?;
        Ok(Chatd {
            listener,
            http: args.common.http.clone(),
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
        let served = self.gateway.serve(self.listener, "chatd", &self.http).await;
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
