//! The requests and replies of the calls that have their own types.

use std::collections::HashMap;

use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{Chat, ChatKind, Message, SyncedChat};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who is asking: the user, their device, and the WebSocket session (none for REST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub session: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    pub chat_id: ChatId,
    pub client_msg_id: String,
    pub body: String,
}

/// The durable result of a send. `created` is false when the send repeated an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOutcome {
    pub chat_id: ChatId,
    pub client_msg_id: String,
    pub msg_id: String,
    pub seq: u64,
    pub ts: i64,
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateChat {
    pub kind: ChatKind,
    pub title: Option<String>,
    pub members: Vec<UserId>,
}

/// A created (or, for a direct chat, found) chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedChat {
    pub chat: Chat,
    /// False when the direct chat of the pair existed already.
    pub created: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    pub before_seq: Option<u64>,
    pub after_seq: Option<u64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// chat -> the last seq this device has.
    pub cursors: HashMap<ChatId, u64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// Missed messages, ascending per chat.
    pub messages: Vec<Message>,
    pub complete: bool,
    pub chats: Vec<SyncedChat>,
}

/// Bounds of the contract both sides must agree on; each is a flag with an env var, given
/// to the gateways and the chat services alike.
#[derive(Debug, Clone, clap::Args)]
pub struct ContractLimits {
    /// Largest message body in bytes (UTF-8).
    #[arg(long, env = "CHAT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Most bytes of messages one `history` or `sync` page carries (bodies plus about 160
    /// bytes each); a fuller page is cut short (`complete: false` for sync) and the client
    /// asks for the next. Gateways size their reply budgets from it.
    #[arg(long, env = "CHAT_MAX_PAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_page_bytes: usize,
}

impl Default for ContractLimits {
    fn default() -> Self {
        use clap::{Args, FromArgMatches};
        let command =
            ContractLimits::augment_args(clap::Command::new("defaults").no_binary_name(true));
        let matches = command
            .try_get_matches_from(std::iter::empty::<String>())
            .expect("every contract limit has a default");
        ContractLimits::from_arg_matches(&matches).expect("defaults parse")
    }
}
