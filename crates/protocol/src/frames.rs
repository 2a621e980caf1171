//! WebSocket frames: what clients send (`ClientFrame`) and what the server sends (`ServerFrame`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::{ChatId, DeviceId, UserId};
use crate::message_frames;
use crate::objects::{
    ChatChange, ChatEvent, ChatHeader, Message, PresenceEntry, ReceiptKind, SyncedChat,
};

/// A frame from a client, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send {
        id: String,
        chat_id: ChatId,
        client_msg_id: String,
        body: String,
    },
    Recv {
        id: Option<String>,
        chat_id: ChatId,
        seq: u64,
    },
    Read {
        id: Option<String>,
        chat_id: ChatId,
        seq: u64,
    },
    Sync {
        id: String,
        #[serde(default)]
        cursors: HashMap<ChatId, u64>,
        limit: Option<u32>,
    },
    History {
        id: String,
        chat_id: ChatId,
        before_seq: Option<u64>,
        limit: Option<u32>,
    },
    Typing {
        id: Option<String>,
        chat_id: ChatId,
    },
    PresenceSub {
        id: String,
        user_ids: Vec<UserId>,
    },
    Ping {
        id: String,
    },
}

impl ClientFrame {
    /// The request id, if the frame carries one.
    pub fn id(&self) -> Option<&str> {
        match self {
            ClientFrame::Send { id, .. }
            | ClientFrame::Sync { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::PresenceSub { id, .. }
            | ClientFrame::Ping { id } => Some(id),
            ClientFrame::Recv { id, .. }
            | ClientFrame::Read { id, .. }
            | ClientFrame::Typing { id, .. } => id.as_deref(),
        }
    }

    /// Every client frame's `type`: the ones decoding knows, in the order `kind_index`
    /// numbers them, so a per-type table (metrics by type) is indexed rather than searched.
    pub const KINDS: [&'static str; 8] = [
        "send",
        "recv",
        "read",
        "sync",
        "history",
        "typing",
        "presence_sub",
        "ping",
    ];

    /// Where this frame's `type` is in `KINDS`.
    pub fn kind_index(&self) -> usize {
        match self {
            ClientFrame::Send { .. } => 0,
            ClientFrame::Recv { .. } => 1,
            ClientFrame::Read { .. } => 2,
            ClientFrame::Sync { .. } => 3,
            ClientFrame::History { .. } => 4,
            ClientFrame::Typing { .. } => 5,
            ClientFrame::PresenceSub { .. } => 6,
            ClientFrame::Ping { .. } => 7,
        }
    }

    /// The frame's `type`, for metrics labels.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }
}

/// A frame from the server, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        proto: u32,
        user_id: UserId,
        device_id: DeviceId,
        session_id: String,
        server_id: String,
        heartbeat_ms: u64,
        max_frame_bytes: usize,
        max_body_bytes: usize,
    },
    Sent {
        re: String,
        chat_id: ChatId,
        client_msg_id: String,
        msg_id: String,
        seq: u64,
        ts: i64,
    },
    Msg(Message),
    Receipt {
        chat_id: ChatId,
        user_id: UserId,
        kind: ReceiptKind,
        seq: u64,
    },
    Synced {
        re: String,
        complete: bool,
        chats: Vec<SyncedChat>,
    },
    History {
        re: String,
        chat_id: ChatId,
        messages: Vec<Message>,
    },
    Typing {
        chat_id: ChatId,
        user_id: UserId,
    },
    Presence {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        re: Option<String>,
        users: Vec<PresenceEntry>,
    },
    Pong {
        re: String,
        ts: i64,
    },
    Chat {
        event: ChatEvent,
        chat: ChatHeader,
        /// What changed (v1.1); empty for a chat the user was just added to or created.
        changes: Vec<ChatChange>,
    },
    Reconnect {
        after_ms: u64,
    },
    /// Success reply to a request that has no frame of its own (`recv`, `read`, `typing` with an `id`).
    Ok {
        re: String,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        re: Option<String>,
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    /// An error frame answering request `re` (if any).
    pub fn error(re: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            re,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The frame as JSON text. Serializing these types cannot fail (string keys, no maps of non-strings).
    /// The frames of every message are written by hand (`message_frames`), the rest by serde.
    pub fn to_json(&self) -> String {
        match self {
            ServerFrame::Msg(message) => message_frames::msg(message),
            ServerFrame::Sent {
                re,
                chat_id,
                client_msg_id,
                msg_id,
                seq,
                ts,
            } => message_frames::sent(re, chat_id, client_msg_id, msg_id, *seq, *ts),
            _ => serde_json::to_string(self).expect("server frames always serialize"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_frame_flattens_the_message() {
        let frame = ServerFrame::Msg(Message {
            chat_id: "c".into(),
            seq: 3,
            msg_id: "m".into(),
            sender_id: "alice".into(),
            client_msg_id: "k".into(),
            body: "hi".into(),
            ts: 7,
        });
        let v: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(v["type"], "msg");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["body"], "hi");
    }

    #[test]
    fn each_kind_is_its_frames_type() {
        let frames = [
            r#"{"type":"send","id":"1","chat_id":"c","client_msg_id":"k","body":"b"}"#,
            r#"{"type":"recv","chat_id":"c","seq":1}"#,
            r#"{"type":"read","chat_id":"c","seq":1}"#,
            r#"{"type":"sync","id":"1","chats":[]}"#,
            r#"{"type":"history","id":"1","chat_id":"c","before_seq":5}"#,
            r#"{"type":"typing","chat_id":"c","on":true}"#,
            r#"{"type":"presence_sub","id":"1","user_ids":[]}"#,
            r#"{"type":"ping","id":"1"}"#,
        ];
        for (i, text) in frames.iter().enumerate() {
            let frame: ClientFrame = serde_json::from_str(text).expect(text);
            let tag: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(frame.kind(), tag["type"], "{text}");
            assert_eq!(frame.kind_index(), i, "{text}");
        }
        assert_eq!(frames.len(), ClientFrame::KINDS.len());
    }

    #[test]
    fn error_frame_omits_absent_fields() {
        let json = ServerFrame::error(None, ErrorCode::BadRequest, "nope").to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"bad_request","message":"nope"}"#
        );
    }
}
