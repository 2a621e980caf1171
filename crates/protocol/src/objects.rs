//! The objects of protocol v1: messages, chats, members, summaries and presence entries.

use serde::{Deserialize, Serialize};

use crate::ids::{ChatId, UserId};

/// A stored message, as it appears in `msg` frames, `history` and REST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub chat_id: ChatId,
    pub seq: u64,
    pub msg_id: String,
    pub sender_id: UserId,
    pub client_msg_id: String,
    pub body: String,
    pub ts: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Direct,
    Group,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(ChatKind::Direct),
            "group" => Some(ChatKind::Group),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub role: Role,
}

/// A chat with its members, as REST carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub chat_id: ChatId,
    pub kind: ChatKind,
    pub title: Option<String>,
    pub members: Vec<Member>,
    pub created_at: i64,
    pub head_seq: u64,
    /// Bumped by every change of members or roles (v1.1): a `chat` frame's version one
    /// above the client's means it missed nothing; a larger gap means refetch.
    #[serde(default)]
    pub version: u64,
}

/// What a `chat` frame says about the chat (v1.1): no member list, which in a large group
/// would make every change a frame of the whole group to every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatHeader {
    pub chat_id: ChatId,
    pub kind: ChatKind,
    pub title: Option<String>,
    pub member_count: usize,
    pub version: u64,
}

impl From<&Chat> for ChatHeader {
    fn from(chat: &Chat) -> Self {
        ChatHeader {
            chat_id: chat.chat_id.clone(),
            kind: chat.kind,
            title: chat.title.clone(),
            member_count: chat.members.len(),
            version: chat.version,
        }
    }
}

/// One change a `chat` frame reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChatChange {
    MemberAdded { user_id: UserId, role: Role },
    MemberRemoved { user_id: UserId },
    RoleChanged { user_id: UserId, role: Role },
}

impl Chat {
    pub fn member(&self, user_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.user_id == user_id)
    }

    pub fn is_admin(&self, user_id: &str) -> bool {
        self.member(user_id).is_some_and(|m| m.role == Role::Admin)
    }
}

/// One chat's state for one user and device, as `synced` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedChat {
    pub chat_id: ChatId,
    pub kind: ChatKind,
    pub title: Option<String>,
    pub head_seq: u64,
    pub delivered_seq: u64,
    pub read_seq: u64,
    pub unread: u64,
}

/// A chat in `GET /v1/chats`: the chat plus the caller's watermarks and the last message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatListEntry {
    #[serde(flatten)]
    pub chat: Chat,
    pub read_seq: u64,
    pub delivered_seq: u64,
    pub unread: u64,
    pub last_message: Option<Message>,
}

/// Whether a user is online, and when they were last seen (ms since epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub user_id: UserId,
    pub online: bool,
    pub last_seen: Option<i64>,
    /// Set to `"forbidden"` when the caller may not see this user.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Delivered,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatEvent {
    Added,
    Removed,
    Updated,
}

/// Who may see when a user was last seen (v1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LastSeenVisibility {
    /// The people the user shares a chat with (the default).
    #[default]
    Contacts,
    /// Nobody: `last_seen` is null for everyone else, in answers and live frames.
    Nobody,
}

/// A user's privacy settings (v1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrivacySettings {
    pub last_seen: LastSeenVisibility,
}

/// A push platform a device token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushPlatform {
    Apns,
    Fcm,
}

impl PushPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            PushPlatform::Apns => "apns",
            PushPlatform::Fcm => "fcm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "apns" => Some(PushPlatform::Apns),
            "fcm" => Some(PushPlatform::Fcm),
            _ => None,
        }
    }
}
