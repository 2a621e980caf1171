//! Bounds of the internal API, the same on both sides.

/// Settings of the internal API; each is a flag with an env var.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcLimits {
    /// Largest internal message either side sends or accepts (a sync reply, a chat list);
    /// must exceed the largest page (`CHAT_MAX_PAGE_BYTES`) and chat list.
    #[arg(long, env = "CHAT_INTERNAL_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Sends of one gateway stream a chat service holds unanswered before it stops reading
    /// that stream (HTTP/2 flow control then holds the gateway back).
    #[arg(
        long,
        env = "CHAT_INTERNAL_MAX_SENDS_IN_FLIGHT",
        default_value_t = 4096
    )]
    pub max_sends_in_flight: usize,
}

impl Default for RpcLimits {
    fn default() -> Self {
        chat_ops::defaults_of()
    }
}
