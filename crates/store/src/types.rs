//! Plain data the store trait passes around besides the protocol objects.

use chat_protocol::ids::{DeviceId, UserId};
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
    pub sender_id: UserId,
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
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub platform: PushPlatform,
    pub token: String,
}

/// What one read of a chat's log may return: at most `limit` messages, and no more than
/// `max_bytes` counted by `Page::cost` — except that the first message is always
/// returned, so a reader paging through a log always moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub max_bytes: usize,
}

/// Bytes counted per message besides its body: the frame's other fields, roughly.
pub const MESSAGE_FRAME_ALLOWANCE: usize = 160;

impl Page {
    pub fn new(limit: usize, max_bytes: usize) -> Self {
        Page { limit, max_bytes }
    }

    /// Bounded by count only.
    pub fn count(limit: usize) -> Self {
        Page::new(limit, usize::MAX)
    }

    /// What a message costs in a page: its body and the frame around it.
    pub fn cost(message: &Message) -> usize {
        message.body.len() + MESSAGE_FRAME_ALLOWANCE
    }

    /// An empty page to fill message by message.
    pub fn filler(self) -> PageFiller {
        PageFiller {
            page: self,
            messages: Vec::new(),
            bytes: 0,
            full: self.limit == 0,
        }
    }
}

/// Takes messages in order until the page is full.
#[derive(Debug)]
pub struct PageFiller {
    page: Page,
    messages: Vec<Message>,
    bytes: usize,
    full: bool,
}

impl PageFiller {
    /// Adds `message` if it fits; false (and the page is full from now on) when it does not.
    pub fn offer(&mut self, message: Message) -> bool {
        if self.full {
            return false;
        }
        let cost = Page::cost(&message);
        if !self.messages.is_empty() && self.bytes.saturating_add(cost) > self.page.max_bytes {
            self.full = true;
            return false;
        }
        self.bytes = self.bytes.saturating_add(cost);
        self.messages.push(message);
        if self.messages.len() >= self.page.limit {
            self.full = true;
        }
        true
    }

    pub fn is_full(&self) -> bool {
        self.full
    }

    /// How many more messages the count allows.
    pub fn room(&self) -> usize {
        if self.full {
            0
        } else {
            self.page.limit - self.messages.len()
        }
    }

    pub fn into_messages(self) -> Vec<Message> {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, body_len: usize) -> Message {
        Message {
            chat_id: "c".into(),
            seq,
            msg_id: format!("m{seq}"),
            sender_id: "a".into(),
            client_msg_id: format!("k{seq}"),
            body: "x".repeat(body_len),
            ts: 0,
        }
    }

    #[test]
    fn a_page_stops_at_its_count_or_its_bytes() {
        let mut by_count = Page::count(2).filler();
        assert!(by_count.offer(message(1, 10)));
        assert!(by_count.offer(message(2, 10)));
        assert!(by_count.is_full());
        assert!(!by_count.offer(message(3, 10)));

        let cost = 1000 + MESSAGE_FRAME_ALLOWANCE;
        let mut by_bytes = Page::new(100, 2 * cost + 1).filler();
        assert!(by_bytes.offer(message(1, 1000)));
        assert!(by_bytes.offer(message(2, 1000)));
        assert!(!by_bytes.offer(message(3, 1000)));
        assert_eq!(by_bytes.into_messages().len(), 2);
    }

    #[test]
    fn the_first_message_always_fits() {
        let mut page = Page::new(10, 1).filler();
        assert!(page.offer(message(1, 5000)));
        assert!(!page.offer(message(2, 1)));
        assert_eq!(page.room(), 0);
    }
}
