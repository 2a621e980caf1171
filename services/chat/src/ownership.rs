//! Which chats this chat-service instance may order right now. In `chatd` it owns
//! everything; in the scaled-out mode chats are hashed into partitions and each partition
//! is leased to one instance at a time (see `lease`).

use chat_api::ChatId;
use futures_util::future::BoxFuture;

pub trait Ownership: Send + Sync + 'static {
    /// The generation of this instance's current hold on the chat's partition, if it may
    /// order the chat now. A new generation means state cached under an older one (head
    /// seq, recent client_msg_ids, members) may be stale and must be reloaded.
    fn owns(&self, chat_id: &ChatId) -> Option<u64>;

    /// Whether this instance still holds the chat's partition under `generation`: true
    /// also while the partition is being handed over (no new work, but what was accepted
    /// under the lease is finished and acked).
    fn holds(&self, chat_id: &ChatId, generation: u64) -> bool {
        self.owns(chat_id) == Some(generation)
    }
}

/// What a handover waits for: the appends accepted so far, finished.
pub trait AppendBarrier: Send + Sync + 'static {
    /// Resolves once every append accepted before the call has finished, and every
    /// owner-scoped change (members, roles, blocks) in progress; true when no append failed
    /// (a failed or timed-out append may still land on some stores).
    fn settled(&self) -> BoxFuture<'static, bool>;
}

/// The single-process owner of every chat (`chatd`).
pub struct OwnsEverything;

impl Ownership for OwnsEverything {
    fn owns(&self, _chat_id: &ChatId) -> Option<u64> {
        Some(0)
    }
}
