//! Settings of the chat service; each is a flag with an env var.

use std::time::Duration;

use chat_api::ContractLimits;
use chat_push::QueueBounds;

#[derive(Debug, Clone, clap::Args)]
pub struct ChatConfig {
    #[command(flatten)]
    pub contract: ContractLimits,

    /// Most members a group may have.
    #[arg(long, env = "CHAT_MAX_GROUP_MEMBERS", default_value_t = 5000)]
    pub max_group_members: usize,

    /// Most users one user may block (their list is stored and returned whole).
    #[arg(long, env = "CHAT_MAX_BLOCKS", default_value_t = 1000)]
    pub max_blocks: usize,

    /// Most devices one user may register for push (each push goes to all of them).
    #[arg(long, env = "CHAT_MAX_PUSH_DEVICES", default_value_t = 20)]
    pub max_push_devices: usize,

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

    /// Push jobs one user may have waiting (one per chat: later messages of a chat fold
    /// into its waiting job); more are dropped and counted.
    #[arg(long, env = "CHAT_PUSH_MAX_PENDING_PER_USER", default_value_t = 16)]
    pub push_max_pending_per_user: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        chat_ops::defaults_of()
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
