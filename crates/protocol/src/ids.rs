//! Typed ids (user, device, chat), their validation, and the derivation of direct chat
//! ids. The newtypes serialize as plain strings; they exist so that a user id cannot be
//! passed where a chat id is expected.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

id_type!(
    /// A user: the `sub` of their token.
    UserId
);
id_type!(
    /// One of a user's devices (phone, laptop, a browser tab…).
    DeviceId
);
id_type!(
    /// A chat: a UUID, derived from the pair for direct chats.
    ChatId
);

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
pub fn direct_chat_id(a: &UserId, b: &UserId) -> ChatId {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    // '\n' cannot occur in a valid user id, so the pair encoding is unambiguous.
    let name = format!("{first}\n{second}");
    ChatId(Uuid::new_v5(&DIRECT_NAMESPACE, name.as_bytes()).to_string())
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
        let (alice, bob, carol) = (
            UserId::from("alice"),
            UserId::from("bob"),
            UserId::from("carol"),
        );
        assert_eq!(direct_chat_id(&alice, &bob), direct_chat_id(&bob, &alice));
        assert_ne!(direct_chat_id(&alice, &bob), direct_chat_id(&alice, &carol));
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = ChatId::from("c-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""c-1""#);
        let back: ChatId = serde_json::from_str(r#""c-1""#).unwrap();
        assert_eq!(back, "c-1");
    }
}
