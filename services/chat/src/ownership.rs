//! Which chats this chat-service instance may order right now. In `chatd` it owns
//! everything; in the scaled-out mode chats are hashed into partitions and each partition
//! is leased to one instance at a time (see `lease`).

/// The partition a chat belongs to: FNV-1a of the chat id, so every process agrees.
pub fn partition_of(chat_id: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in chat_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

pub trait Ownership: Send + Sync + 'static {
    /// The generation of this instance's current hold on the chat's partition, if it may
    /// order the chat now. A new generation means state cached under an older one (head
    /// seq, recent client_msg_ids, members) may be stale and must be reloaded.
    fn owns(&self, chat_id: &str) -> Option<u64>;
}

/// The single-process owner of every chat (`chatd`).
pub struct OwnsEverything;

impl Ownership for OwnsEverything {
    fn owns(&self, _chat_id: &str) -> Option<u64> {
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("chat-1", 64), partition_of("chat-1", 64));
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_of(&format!("c{i}"), 16))
            .collect();
        assert_eq!(used.len(), 16);
        assert!(used.iter().all(|p| *p < 16));
    }
}
