//! Which chats this chat-service instance may order right now. In `chatd` it owns
//! everything; in the scaled-out mode chats are hashed into partitions and each partition
//! is leased to one instance at a time (see `lease`).

use chat_api::ChatId;

pub trait Ownership: Send + Sync + 'static {
    /// The generation of this instance's current hold on the chat's partition, if it may
    /// order the chat now. A new generation means state cached under an older one (head
    /// seq, recent client_msg_ids, members) may be stale and must be reloaded.
    fn owns(&self, chat_id: &ChatId) -> Option<u64>;
}

/// The single-process owner of every chat (`chatd`).
pub struct OwnsEverything;

impl Ownership for OwnsEverything {
    fn owns(&self, _chat_id: &ChatId) -> Option<u64> {
        Some(0)
    }
}
