//! Serving one accepted connection: which HTTP it speaks (HTTP/2 without TLS announces
//! itself with a fixed preface; anything else is HTTP/1.1), decided within the header
//! deadline so that a silent or trickling socket is dropped either way, then hyper with
//! the listener's bounds until the connection ends or shutdown asks it to finish.

use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::server::Protocols;
use super::HttpLimits;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How often a socket that sent part of the HTTP/2 preface is looked at again.
const SNIFF_POLL: Duration = Duration::from_millis(5);
/// HTTP/2 pings an idle connection this often, and drops it when a ping goes unanswered
/// this long: the HTTP/2 counterpart of the header deadline.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Streams one HTTP/2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 1024;

/// Serves `stream` until it closes, or finishes its request in progress once `stop` fires.
pub(super) async fn serve_connection<S>(
    stream: TcpStream,
    service: S,
    protocols: Protocols,
    limits: &HttpLimits,
    stop: CancellationToken,
) where
    S: HttpService<Incoming, ResBody = Body> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let h2 = match protocols {
        Protocols::Http1 => false,
        Protocols::Http1AndH2c => match sniff_h2(&stream, limits.http_header_timeout).await {
            Some(h2) => h2,
            None => {
                metrics::counter!("chat_http_header_timeouts_total").increment(1);
                return;
            }
        },
    };
    let io = TokioIo::new(stream);
    let served = if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE)
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(limits.http_max_header_bytes as u32);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => served,
            _ = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.http_header_timeout)
            // hyper's floor for its read buffer is 8 KiB.
            .max_buf_size(limits.http_max_header_bytes.max(8192));
        let connection = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => served,
            _ = stop.cancelled() => {
                // Finish the request in progress (if any), then close.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    };
    if served.is_err_and(|e| e.is_timeout()) {
        metrics::counter!("chat_http_header_timeouts_total").increment(1);
    }
}

/// Whether the client speaks HTTP/2 (its first bytes are the preface); `None` when it
/// closed or did not say within `deadline`. Nothing is consumed.
async fn sniff_h2(stream: &TcpStream, deadline: Duration) -> Option<bool> {
    let sniffing = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            stream.readable().await.ok()?;
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if buf[..n] != H2_PREFACE[..n] {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
            // Part of the preface so far: look again shortly.
            tokio::time::sleep(SNIFF_POLL).await;
        }
    };
    tokio::time::timeout(deadline, sniffing)
        .await
        .ok()
        .flatten()
}
