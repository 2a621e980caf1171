//! Plain data the store trait passes around besides the protocol objects.

use chat_protocol::{Chat, Message, PushPlatform};

/// What the sequencer needs to take over a chat: where its log ends and which
/// client_msg_ids it has seen recently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequencerState {
    pub head_seq: u64,
    pub recent: Vec<DedupEntry>,
}

/// The outcome of one accepted send, kept so a repeat returns the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupEntry {
    pub sender_id: String,
    pub client_msg_id: String,
    pub seq: u64,
    pub msg_id: String,
    pub ts: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// Highest seq this device acknowledged with `recv`.
    pub device_delivered: u64,
    /// Highest seq any of the user's devices acknowledged.
    pub delivered: u64,
    /// Highest seq the user marked read.
    pub read: u64,
}

/// One chat as seen by one user on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChatState {
    pub chat: Chat,
    pub watermarks: Watermarks,
    /// Messages from others after the read watermark.
    pub unread: u64,
    pub last_message: Option<Message>,
}

/// A registered push token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushDevice {
    pub user_id: String,
    pub device_id: String,
    pub platform: PushPlatform,
    pub token: String,
}
