//! Settings of the gateway; each is a flag with an env var.

use std::time::Duration;

use crate::limits::LimitsConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayConfig {
    /// Name of this gateway in `hello` frames and logs (default: gw- and a random suffix).
    #[arg(long, env = "CHAT_SERVER_ID")]
    pub server_id: Option<String>,

    /// Largest WebSocket text frame and REST body accepted, in bytes. Larger frames get a
    /// `too_large` error; frames over 4x this close the connection with code 1009.
    #[arg(long, env = "CHAT_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Interval of server pings; a connection silent for two intervals is closed.
    #[arg(long, env = "CHAT_HEARTBEAT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// Events queued for one connection before it counts as a slow consumer and is closed
    /// (besides their bytes, `CHAT_OUTBOUND_QUEUE_BYTES`).
    #[arg(long, env = "CHAT_OUTBOUND_QUEUE", default_value_t = 4096)]
    pub outbound_queue: usize,

    /// How long a frame of a large group (one fanned out on a group topic) may wait for the
    /// next ones, so a member's connection writes several in one syscall; a frame of any
    /// other kind is written at once, with whatever waits. `0ms` writes every frame as it
    /// comes.
    #[arg(long, env = "CHAT_GROUP_LINGER", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub group_linger: Duration,

    /// Requests one connection may have in flight before the gateway stops reading from it
    /// (besides their bytes, `CHAT_REPLY_BUDGET_BYTES`).
    #[arg(long, env = "CHAT_MAX_INFLIGHT", default_value_t = 256)]
    pub max_inflight: usize,

    /// Sustained `send` rate allowed per connection, per second.
    #[arg(long, env = "CHAT_SEND_RATE", default_value_t = 100)]
    pub send_rate: u32,

    /// Burst of `send` frames allowed above the sustained rate.
    #[arg(long, env = "CHAT_SEND_BURST", default_value_t = 200)]
    pub send_burst: u32,

    /// Sustained `typing` rate allowed per connection, per second.
    #[arg(long, env = "CHAT_TYPING_RATE", default_value_t = 5)]
    pub typing_rate: u32,

    /// Malformed or oversized frames tolerated per connection within 10 s before it is
    /// closed (1008). Being over a rate is not one of them.
    #[arg(long, env = "CHAT_MAX_VIOLATIONS", default_value_t = 50)]
    pub max_violations: u32,

    /// Devices one user may have connected at once (one connection each: a new connection
    /// of a device replaces the old one).
    #[arg(long, env = "CHAT_MAX_DEVICES_PER_USER", default_value_t = 10)]
    pub max_devices_per_user: usize,

    /// On shutdown, clients are told to reconnect after a random delay up to this.
    #[arg(long, env = "CHAT_RECONNECT_JITTER", default_value = "5s", value_parser = humantime::parse_duration)]
    pub reconnect_jitter: Duration,

    /// How long shutdown waits for connections and in-flight requests to finish.
    #[arg(long, env = "CHAT_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Where Prometheus scrapes `/metrics` (e.g. `0.0.0.0:9090`); never the public port,
    /// which clients and the internet reach. Unset: no metrics endpoint.
    #[arg(long, env = "CHAT_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Demo login: `POST /v1/dev/token {"user_id"}` mints a token for anyone who asks.
    /// Never for a real deployment.
    #[arg(long, env = "CHAT_DEV_LOGIN")]
    pub dev_login: bool,

    #[command(flatten)]
    pub limits: LimitsConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        chat_ops::defaults_of()
    }
}
