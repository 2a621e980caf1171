//! The settings every binary takes: where to listen, how to log, and the HTTP bounds.

use std::net::SocketAddr;

use crate::http::HttpLimits;
use crate::logging::LogFormat;

#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on (default per binary: chatd and chat-gateway 127.0.0.1:8080,
    /// chat-service :8081, chat-presence :8082, chat-push :8083).
    #[arg(long, env = "CHAT_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub http: HttpLimits,
}

impl CommonArgs {
    /// The address to listen on: the configured one, else this binary's default port on
    /// loopback.
    pub fn listen_or(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

impl Default for CommonArgs {
    fn default() -> Self {
        crate::defaults_of()
    }
}
