//! Serving HTTP on a public or internal listener with the bounds a hostile client cannot
//! get around: a deadline for request headers (which also ends idle keep-alive
//! connections), a deadline per request, a cap on header bytes, and caps on connections
//! per source address and in total.

mod connection;
mod server;
mod slots;

use std::time::Duration;

pub use server::{serve, Protocols};
pub use slots::{ConnectionSlot, ConnectionSlots};

/// HTTP settings every listener takes; each is a flag with an env var.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimits {
    /// A client must send a request's headers within this; it is also how long an idle
    /// keep-alive connection is kept (slowloris sockets are closed after it).
    #[arg(long, env = "CHAT_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,

    /// Deadline of one HTTP request, body included (a WebSocket upgrade answers at once;
    /// the connection it opens is not bound by this).
    #[arg(long, env = "CHAT_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http_request_timeout: Duration,

    /// Largest request head (request line and headers), in bytes.
    #[arg(long, env = "CHAT_HTTP_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub http_max_header_bytes: usize,

    /// Open connections (HTTP and WebSocket) the listener holds at once; more are closed
    /// on accept.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Open connections from one source address; 0 = no cap (behind a proxy every client
    /// shares the proxy's address; cap at the proxy then).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 1024)]
    pub max_connections_per_address: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        crate::defaults_of()
    }
}
