//! The accept loop: each connection gets a slot (or is closed at once), then hyper serves
//! it — HTTP/1.1 with a header deadline, a head-size cap and WebSocket upgrades, and on
//! internal listeners HTTP/2 (gRPC) as well; shutdown stops accepting and lets requests
//! in progress finish.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

use super::slots::ConnectionSlots;
use super::HttpLimits;

/// How long to back off when accepting fails (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The HTTP versions a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.1 (and WebSocket upgrades): the public listeners.
    Http1,
    /// HTTP/1.1 and HTTP/2 without TLS (gRPC): internal listeners.
    Http1AndH2c,
}

/// Logs `"{name} listening"` with the bound `addr`, serves `router` until `shutdown`, then
/// waits (at most `drain`) for requests in progress. Handlers find the peer's address as
/// `ConnectInfo<SocketAddr>` and its `ConnectionSlot` in the request extensions.
pub async fn serve(
    name: &str,
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    protocols: Protocols,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "{name} listening");
    let slots = ConnectionSlots::new(limits.max_connections, limits.max_connections_per_address);
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.http_request_timeout,
    ));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    metrics::counter!("chat_http_accept_errors_total").increment(1);
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let slot = match slots.try_acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!("chat_http_connections_refused_total", "reason" => refusal.as_str())
                    .increment(1);
                drop(stream);
                continue;
            }
        };
        // Chat frames are small and latency-bound: Nagle would hold a reply back until the
        // peer's delayed ACK (up to 40 ms) whenever an earlier frame is still unacknowledged.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(slot.clone());
            router.clone().oneshot(request)
        });
        let stop = shutdown.clone();
        let limits = limits.clone();
        connections.spawn(async move {
            super::connection::serve_connection(stream, service, protocols, &limits, stop).await;
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("{name}: some HTTP requests were still running at the end of the drain");
    }
    Ok(())
}
