//! Binding a service's listener, and serving an internal router until shutdown with the
//! one log line launchers wait for.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{HttpLimits, Protocols};

/// How long an internal listener waits for requests in progress at shutdown.
const INTERNAL_DRAIN: Duration = Duration::from_secs(10);

/// Binds the listener a service was configured with, naming the address on failure.
pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {addr}: {e}")))
}

/// Logs `"{name} listening"` with the bound `addr`, then serves an internal listener
/// (HTTP/1.1 and HTTP/2) until `shutdown`.
pub async fn serve_until(
    name: &str,
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    crate::http::serve(
        name,
        listener,
        router,
        limits,
        Protocols::Http1AndH2c,
        shutdown,
        INTERNAL_DRAIN,
    )
    .await
}
