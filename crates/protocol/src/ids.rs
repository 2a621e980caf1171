//! Validation of user, device and request ids, and the derivation of direct chat ids.

use uuid::Uuid;

/// The longest user or device id the protocol accepts.
pub const MAX_ID_LEN: usize = 64;

/// The device id used when a client names none.
pub const DEFAULT_DEVICE: &str = "default";

/// True when `id` is 1–64 chars of `[A-Za-z0-9._@-]`, the form of user and device ids.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// True when a client-chosen token (request id, client_msg_id, chat id) is 1–64 bytes.
pub fn is_valid_client_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_ID_LEN
}

/// Namespace for direct chat ids, so the same pair always maps to the same chat.
const DIRECT_NAMESPACE: Uuid = Uuid::from_u128(0x6c1c_7d0e_54a8_4f0b_9a53_2f3e_8b1d_0c77);

/// The chat id of the direct chat between two users, the same whichever of them asks.
/// Deriving it (instead of looking a pair up) makes "create direct chat" race-free.
pub fn direct_chat_id(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    // '\n' cannot occur in a valid user id, so the pair encoding is unambiguous.
    let name = format!("{first}\n{second}");
    Uuid::new_v5(&DIRECT_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_only() {
        assert!(is_valid_id("alice.b_c@d-e9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id("ünïcode"));
        assert!(!is_valid_id(&"a".repeat(65)));
        assert!(is_valid_id(&"a".repeat(64)));
    }

    #[test]
    fn direct_chat_id_is_symmetric_and_distinct() {
        assert_eq!(
            direct_chat_id("alice", "bob"),
            direct_chat_id("bob", "alice")
        );
        assert_ne!(
            direct_chat_id("alice", "bob"),
            direct_chat_id("alice", "carol")
        );
    }
}
