//! Building the gateway's router and serving it until shutdown, then draining: clients are
//! told to reconnect, in-flight requests finish, connection tasks end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use chat_api::ChatApi;
use chat_auth::JwtKeys;
use chat_bus::Bus;
use chat_ops::http::HttpLimits;
use chat_presence::SessionTracker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::limits::Limits;
use crate::outbound::Stop;
use crate::registry::{Registry, RegistryLimits};
use crate::state::AppState;

pub struct Gateway {
    state: AppState,
    extra: Option<Router>,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        chat: Arc<dyn ChatApi>,
        sessions: Arc<dyn SessionTracker>,
        bus: Arc<dyn Bus>,
        keys: JwtKeys,
        shutdown: CancellationToken,
    ) -> Self {
        chat_ops::metrics::handle();
        let server_id: Arc<str> = config
            .server_id
            .clone()
            .unwrap_or_else(|| chat_ops::instance_name("gw"))
            .into();
        let limits = Limits::new(config.limits.clone());
        limits.spawn_cleanup(shutdown.clone());
        let registry_limits = RegistryLimits {
            max_devices_per_user: config.max_devices_per_user,
            outbound_queue_bytes: config.limits.outbound_queue_bytes,
            max_watches: config.limits.max_presence_watches,
            max_watches_per_user: config.limits.max_presence_watches_per_user,
        };
        let registry = Registry::new(bus, registry_limits, limits.outbound.clone());
        // Connections hear of shutdown through their outbound queues (a wait on the token
        // in every connection's task would cost each idle connection its size).
        tokio::spawn({
            let (registry, shutdown) = (registry.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                registry.stop_all(Stop::Drain);
            }
        });
        Gateway {
            state: AppState {
                chat,
                sessions,
                keys: Arc::new(keys),
                registry,
                limits,
                config: Arc::new(config),
                server_id,
                shutdown,
                connections: TaskTracker::new(),
                draining: Arc::new(AtomicBool::new(false)),
            },
            extra: None,
        }
    }

    pub fn router(&self) -> Router {
        let max_body = self.state.config.max_frame_bytes;
        if self.state.config.dev_login {
            tracing::warn!("DEV LOGIN IS ON: POST /v1/dev/token gives anyone a token for any user; never use --dev-login in production");
        }
        let router = self.extra.clone().unwrap_or_default();
        crate::rest::routes(self.state.config.dev_login)
            .route("/v1/ws", get(crate::ws::upgrade))
            .layer(axum::middleware::from_fn(chat_ops::metrics::track_http))
            .layer(axum::extract::DefaultBodyLimit::max(max_body))
            .with_state(self.state.clone())
            .merge(router)
    }

    /// Serves `routes` too (chatd's web app), beside the API.
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.extra = Some(routes);
        self
    }

    /// Serves on `listener` until `shutdown` (given to `new`) is cancelled, then drains:
    /// connections are told to reconnect once their owed replies are written.
    pub async fn serve(
        self,
        listener: TcpListener,
        name: &str,
        http: &HttpLimits,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let router = self.router();
        let draining = state.draining.clone();
        let shutdown = state.shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            draining.store(true, Ordering::Relaxed);
        });
        let config = &state.config;
        if let Some(addr) = config.metrics_listen {
            let listener = chat_ops::bind(addr).await?;
            let routes = crate::rest::metrics_routes();
            let (limits, shutdown) = (http.clone(), state.shutdown.clone());
            tokio::spawn(async move {
                if let Err(e) =
                    chat_ops::serve_until("metrics", listener, routes, &limits, shutdown).await
                {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }
        chat_ops::http::serve(
            name,
            listener,
            router,
            http,
            chat_ops::http::Protocols::Http1,
            state.shutdown.clone(),
            config.drain_timeout,
        )
        .await?;
        state.connections.close();
        let drained =
            tokio::time::timeout(state.config.drain_timeout, state.connections.wait()).await;
        if drained.is_err() {
            tracing::warn!("drain timeout: some connections did not close in time");
        }
        Ok(())
    }
}
