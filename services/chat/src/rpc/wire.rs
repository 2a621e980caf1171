//! The messages of the internal API: one `Call` per `ChatApi` method (sends travel in
//! batches), their `Answer`s, and errors that keep their kind across the wire.

use std::collections::{HashMap, HashSet};

use chat_protocol::{Chat, ChatListEntry, Message, PushPlatform};
use serde::{Deserialize, Serialize};

use crate::api::{Caller, CreateChat, HistoryQuery, SendOutcome, SendRequest, SyncResult};
use crate::error::ChatError;

pub(crate) const CALL_PATH: &str = "/internal/v1/call";
pub(crate) const SEND_BATCH_PATH: &str = "/internal/v1/send_batch";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Call {
    CreateChat {
        caller: Caller,
        request: CreateChat,
    },
    ListChats {
        caller: Caller,
    },
    GetChat {
        caller: Caller,
        chat_id: String,
    },
    AddMembers {
        caller: Caller,
        chat_id: String,
        user_ids: Vec<String>,
    },
    RemoveMember {
        caller: Caller,
        chat_id: String,
        user_id: String,
    },
    History {
        caller: Caller,
        chat_id: String,
        query: HistoryQuery,
    },
    Sync {
        caller: Caller,
        cursors: HashMap<String, u64>,
        limit: Option<u32>,
    },
    MarkDelivered {
        caller: Caller,
        chat_id: String,
        seq: u64,
    },
    MarkRead {
        caller: Caller,
        chat_id: String,
        seq: u64,
    },
    Typing {
        caller: Caller,
        chat_id: String,
    },
    VisibleUsers {
        caller: Caller,
        user_ids: Vec<String>,
    },
    RegisterDevice {
        caller: Caller,
        device_id: String,
        platform: PushPlatform,
        token: String,
    },
    UnregisterDevice {
        caller: Caller,
        device_id: String,
    },
    LargeGroups {
        caller: Caller,
    },
    Ready,
}

impl Call {
    /// The chat whose owner must answer, for chat-scoped calls; any instance otherwise.
    pub(crate) fn chat(&self) -> Option<&str> {
        match self {
            Call::GetChat { chat_id, .. }
            | Call::AddMembers { chat_id, .. }
            | Call::RemoveMember { chat_id, .. }
            | Call::History { chat_id, .. }
            | Call::MarkDelivered { chat_id, .. }
            | Call::MarkRead { chat_id, .. }
            | Call::Typing { chat_id, .. } => Some(chat_id),
            _ => None,
        }
    }

    /// Calls that change nothing (or change it idempotently) may be retried elsewhere.
    pub(crate) fn retryable(&self) -> bool {
        !matches!(
            self,
            Call::CreateChat { .. } | Call::AddMembers { .. } | Call::RemoveMember { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub(crate) enum Answer {
    Created { chat: Chat, created: bool },
    Chats(Vec<ChatListEntry>),
    Chat(Chat),
    Messages(Vec<Message>),
    Synced(SyncResult),
    Users(HashSet<String>),
    ChatIds(Vec<String>),
    Existed(bool),
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SendItem {
    pub(crate) caller: Caller,
    pub(crate) request: SendRequest,
}

pub(crate) type SendResult = Result<SendOutcome, WireError>;

/// A `ChatError` on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub(crate) kind: String,
    pub(crate) message: String,
}

impl From<ChatError> for WireError {
    fn from(e: ChatError) -> Self {
        let kind = match &e {
            ChatError::BadRequest(_) => "bad_request",
            ChatError::TooLarge(_) => "too_large",
            ChatError::Forbidden(_) => "forbidden",
            ChatError::NotFound(_) => "not_found",
            ChatError::Moved(_) => "moved",
            ChatError::Unavailable(_) => "unavailable",
            ChatError::Internal(_) => "internal",
        };
        WireError {
            kind: kind.into(),
            message: e.client_message(),
        }
    }
}

impl From<WireError> for ChatError {
    fn from(e: WireError) -> Self {
        match e.kind.as_str() {
            "bad_request" => ChatError::BadRequest(e.message),
            "too_large" => ChatError::TooLarge(e.message),
            "forbidden" => ChatError::Forbidden(e.message),
            "not_found" => ChatError::NotFound(e.message),
            "moved" => ChatError::Moved(e.message),
            "unavailable" => ChatError::Unavailable(e.message),
            _ => ChatError::Internal(e.message),
        }
    }
}
