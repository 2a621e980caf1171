//! How chats are placed on chat-service instances, as both sides see it in Redis: chats
//! hash into partitions, each partition is leased to one instance (`chat:lease:{p}` =
//! `{instance}:{nonce}`), and each instance registers where it can be reached
//! (`chat:instance:{id}` → URL; `chat:instances` scores ids by registration expiry).

use chat_protocol::ids::ChatId;

pub const INSTANCES_KEY: &str = "chat:instances";
pub const PARTITIONS_KEY: &str = "chat:partitions";

pub fn lease_key(partition: u32) -> String {
    format!("chat:lease:{partition}")
}

/// Set when a partition's last owner let it go cleanly (every append it accepted had
/// finished); the next owner may then serve at once, without a takeover wait.
pub fn handover_key(partition: u32) -> String {
    format!("chat:lease:{partition}:handed")
}

/// Where an instance announces that it let partitions go, so others take them at once.
pub const RELEASED_CHANNEL: &str = "chat:partitions:released";

pub fn instance_key(instance_id: &str) -> String {
    format!("chat:instance:{instance_id}")
}

/// The instance id inside a lease value `{instance}:{nonce}`.
pub fn lease_holder(value: &str) -> &str {
    value.rsplit_once(':').map_or(value, |(holder, _)| holder)
}

/// The partition a chat belongs to: FNV-1a of the chat id, so every process agrees.
pub fn partition_of(chat_id: &ChatId, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in chat_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        let chat = ChatId::from("chat-1");
        assert_eq!(partition_of(&chat, 64), partition_of(&chat, 64));
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_of(&ChatId::from(format!("c{i}")), 16))
            .collect();
        assert_eq!(used.len(), 16);
        assert!(used.iter().all(|p| *p < 16));
    }

    #[test]
    fn lease_values_name_their_holder() {
        assert_eq!(lease_holder("chat-1:42"), "chat-1");
        assert_eq!(lease_holder("plain"), "plain");
    }
}
