//! Settings of the chat service; each is a flag with an env var.

use std::time::Duration;

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
        }
    }
}
