//! Settings of the chat service; each is a flag with an env var.

use std::time::Duration;

use chat_push::QueueBounds;

#[derive(Debug, Clone, clap::Args)]
pub struct ChatConfig {
    /// Largest message body in bytes (UTF-8).
    #[arg(long, env = "CHAT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Most members a group may have.
    #[arg(long, env = "CHAT_MAX_GROUP_MEMBERS", default_value_t = 5000)]
    pub max_group_members: usize,

    /// How long a client_msg_id is remembered for idempotent resends.
    #[arg(long, env = "CHAT_DEDUP_WINDOW", default_value = "24h", value_parser = humantime::parse_duration)]
    pub dedup_window: Duration,

    /// Sends that may wait for the sequencer before new ones are refused as unavailable.
    #[arg(long, env = "CHAT_SEQUENCER_QUEUE", default_value_t = 65_536)]
    pub sequencer_queue: usize,

    /// Chats whose order state (head seq, recent client_msg_ids) is kept in memory.
    #[arg(long, env = "CHAT_SEQUENCER_CACHED_CHATS", default_value_t = 100_000)]
    pub sequencer_cached_chats: usize,

    /// Groups with more members than this fan out once on a group topic that gateways
    /// subscribe to, instead of once per member.
    #[arg(long, env = "CHAT_LARGE_GROUP_MEMBERS", default_value_t = 100)]
    pub large_group_members: usize,

    /// Most messages one `sync` reply may carry.
    #[arg(long, env = "CHAT_MAX_SYNC_LIMIT", default_value_t = 5000)]
    pub max_sync_limit: u32,

    /// Most bytes of messages one `history` or `sync` page carries (bodies plus about 160
    /// bytes each); a fuller page is cut short (`complete: false` for sync) and the client
    /// asks for the next. Gateways size their reply budgets from it.
    #[arg(long, env = "CHAT_MAX_PAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_page_bytes: usize,

    /// Push jobs one user may have waiting (one per chat: later messages of a chat fold
    /// into its waiting job); more are dropped and counted.
    #[arg(long, env = "CHAT_PUSH_MAX_PENDING_PER_USER", default_value_t = 16)]
    pub push_max_pending_per_user: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_body_bytes: 16 * 1024,
            max_group_members: 5000,
            dedup_window: Duration::from_secs(24 * 3600),
            sequencer_queue: 65_536,
            sequencer_cached_chats: 100_000,
            large_group_members: 100,
            max_sync_limit: 5000,
            max_page_bytes: 256 * 1024,
            push_max_pending_per_user: 16,
        }
    }
}

impl ChatConfig {
    /// The bounds of the push queue this service fills.
    pub fn push_bounds(&self) -> QueueBounds {
        QueueBounds {
            max_pending_per_user: self.push_max_pending_per_user,
        }
    }
}
