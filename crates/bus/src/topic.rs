//! Topics, and their names on a networked bus (`user:{id}`, `group:{chat}`,
//! `presence:{id}`), written and parsed here only.

use std::fmt;

use chat_protocol::ids::{ChatId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Every event for a user's devices.
    User(UserId),
    /// A large group's events, published once for all its members.
    Group(ChatId),
    /// A user's presence changes.
    Presence(UserId),
}

impl Topic {
    /// The topic named `name` (as `Display` writes it), if it is one.
    pub fn parse(name: &str) -> Option<Topic> {
        let (kind, id) = name.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        match kind {
            "user" => Some(Topic::User(id.into())),
            "group" => Some(Topic::Group(id.into())),
            "presence" => Some(Topic::Presence(id.into())),
            _ => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::User(user) => write!(f, "user:{user}"),
            Topic::Group(chat) => write!(f, "group:{chat}"),
            Topic::Presence(user) => write!(f, "presence:{user}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for topic in [
            Topic::User("alice".into()),
            Topic::Group("0190-abc".into()),
            Topic::Presence("bob".into()),
        ] {
            assert_eq!(Topic::parse(&topic.to_string()), Some(topic));
        }
        assert_eq!(Topic::parse("user:"), None);
        assert_eq!(Topic::parse("nope:x"), None);
        assert_eq!(Topic::parse("plain"), None);
    }
}
