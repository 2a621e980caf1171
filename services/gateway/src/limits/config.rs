//! The limits a gateway enforces, as settings: per-user rates for each kind of work,
//! per-connection and server-wide byte budgets, presence watches.

use std::time::Duration;

use super::rate::RateSpec;

#[derive(Debug, Clone, clap::Args)]
pub struct LimitsConfig {
    /// Sends per user (WebSocket and REST together). Over it, a WebSocket connection is
    /// slowed (the gateway stops reading until the budget refills); REST gets 429.
    #[arg(long, env = "CHAT_LIMIT_SEND", default_value = "50/s,500")]
    pub limit_send: RateSpec,

    /// Chats created per user.
    #[arg(long, env = "CHAT_LIMIT_CHAT_CREATE", default_value = "2/s,20")]
    pub limit_chat_create: RateSpec,

    /// Member additions and removals per user.
    #[arg(long, env = "CHAT_LIMIT_MEMBERS", default_value = "5/s,50")]
    pub limit_members: RateSpec,

    /// Reads of the log and chat list per user: `history`, `sync`, GET chats and messages.
    #[arg(long, env = "CHAT_LIMIT_READS", default_value = "20/s,100")]
    pub limit_reads: RateSpec,

    /// Delivery and read acknowledgements (`recv`, `read`) per user.
    #[arg(long, env = "CHAT_LIMIT_RECEIPTS", default_value = "50/s,200")]
    pub limit_receipts: RateSpec,

    /// `typing` frames per user; over it they are dropped (answered `rate_limited` when
    /// they carry an id): a late typing indicator is worthless.
    #[arg(long, env = "CHAT_LIMIT_TYPING", default_value = "5/s,10")]
    pub limit_typing: RateSpec,

    /// Presence subscriptions and queries per user.
    #[arg(long, env = "CHAT_LIMIT_PRESENCE", default_value = "5/s,20")]
    pub limit_presence: RateSpec,

    /// Push token registrations and removals per user.
    #[arg(long, env = "CHAT_LIMIT_DEVICES", default_value = "1/s,10")]
    pub limit_devices: RateSpec,

    /// WebSocket connections opened per user; over it the upgrade gets 429.
    #[arg(long, env = "CHAT_LIMIT_CONNECTS", default_value = "2/s,30")]
    pub limit_connects: RateSpec,

    /// Longest a WebSocket request over a rate is held (reading paused) before it is
    /// answered `rate_limited` instead.
    #[arg(long, env = "CHAT_MAX_RATE_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub max_rate_delay: Duration,

    /// Bytes of replies one connection may owe (in flight or not yet written) before the
    /// gateway stops reading its requests.
    #[arg(long, env = "CHAT_REPLY_BUDGET_BYTES", default_value_t = 1024 * 1024)]
    pub reply_budget_bytes: usize,

    /// Bytes of replies all connections together may owe; a request that would exceed it
    /// is answered `unavailable` with `retry_after_ms` (load shedding).
    #[arg(long, env = "CHAT_REPLY_MEMORY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub reply_memory_bytes: usize,

    /// Bytes of events queued for one connection before it counts as a slow consumer and
    /// is closed (1013); it recovers with `sync`.
    #[arg(long, env = "CHAT_OUTBOUND_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub outbound_queue_bytes: usize,

    /// Bytes of events queued for all connections together; past it, connections that get
    /// more are closed as slow consumers.
    #[arg(long, env = "CHAT_OUTBOUND_MEMORY_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub outbound_memory_bytes: usize,

    /// Users one connection may watch with `presence_sub` (cumulative).
    #[arg(long, env = "CHAT_MAX_PRESENCE_WATCHES", default_value_t = 1000)]
    pub max_presence_watches: usize,

    /// Presence watches one user may hold across their connections.
    #[arg(
        long,
        env = "CHAT_MAX_PRESENCE_WATCHES_PER_USER",
        default_value_t = 5000
    )]
    pub max_presence_watches_per_user: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        chat_ops::defaults_of()
    }
}

impl LimitsConfig {
    /// No per-user rate limits at all (load tests, trusted clients).
    pub fn without_rates(mut self) -> Self {
        for spec in [
            &mut self.limit_send,
            &mut self.limit_chat_create,
            &mut self.limit_members,
            &mut self.limit_reads,
            &mut self.limit_receipts,
            &mut self.limit_typing,
            &mut self.limit_presence,
            &mut self.limit_devices,
            &mut self.limit_connects,
        ] {
            *spec = RateSpec::OFF;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let limits = LimitsConfig::default();
        assert_eq!(limits.limit_send, RateSpec::per_second(50, 500));
        assert_eq!(limits.reply_budget_bytes, 1024 * 1024);
    }
}
