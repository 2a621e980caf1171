//! `ChatApi`: everything the gateway asks of the chat service, whether in-process or remote.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chat_protocol::{Chat, ChatKind, ChatListEntry, Message, PushPlatform, SyncedChat};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ChatError;

/// Who is asking: the user, their device, and the WebSocket session (none for REST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: String,
    pub device_id: String,
    pub session: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    pub chat_id: String,
    pub client_msg_id: String,
    pub body: String,
}

/// The durable result of a send. `created` is false when the send repeated an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOutcome {
    pub chat_id: String,
    pub client_msg_id: String,
    pub msg_id: String,
    pub seq: u64,
    pub ts: i64,
    pub created: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateChat {
    pub kind: ChatKind,
    pub title: Option<String>,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryQuery {
    pub before_seq: Option<u64>,
    pub after_seq: Option<u64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResult {
    /// Missed messages, ascending per chat.
    pub messages: Vec<Message>,
    pub complete: bool,
    pub chats: Vec<SyncedChat>,
}

#[async_trait]
pub trait ChatApi: Send + Sync + 'static {
    /// Sends a message. The request is queued before this returns, so sends issued one
    /// after another by one caller keep that order in the chat; the future resolves once
    /// the message is durable.
    fn send(
        &self,
        caller: &Caller,
        request: SendRequest,
    ) -> BoxFuture<'static, Result<SendOutcome, ChatError>>;

    /// Creates a chat; the bool is true when it was created now (false: the existing direct chat).
    async fn create_chat(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<(Chat, bool), ChatError>;
    async fn list_chats(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError>;
    async fn get_chat(&self, caller: &Caller, chat_id: &str) -> Result<Chat, ChatError>;
    async fn add_members(
        &self,
        caller: &Caller,
        chat_id: &str,
        user_ids: Vec<String>,
    ) -> Result<Chat, ChatError>;
    async fn remove_member(
        &self,
        caller: &Caller,
        chat_id: &str,
        user_id: &str,
    ) -> Result<(), ChatError>;

    async fn history(
        &self,
        caller: &Caller,
        chat_id: &str,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError>;
    async fn sync(
        &self,
        caller: &Caller,
        cursors: HashMap<String, u64>,
        limit: Option<u32>,
    ) -> Result<SyncResult, ChatError>;

    async fn mark_delivered(
        &self,
        caller: &Caller,
        chat_id: &str,
        seq: u64,
    ) -> Result<(), ChatError>;
    async fn mark_read(&self, caller: &Caller, chat_id: &str, seq: u64) -> Result<(), ChatError>;
    async fn typing(&self, caller: &Caller, chat_id: &str) -> Result<(), ChatError>;

    /// Which of `user_ids` the caller may see the presence of (those sharing a chat).
    async fn visible_users(
        &self,
        caller: &Caller,
        user_ids: &[String],
    ) -> Result<HashSet<String>, ChatError>;

    async fn register_device(
        &self,
        caller: &Caller,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError>;
    async fn unregister_device(&self, caller: &Caller, device_id: &str) -> Result<bool, ChatError>;

    /// The caller's groups large enough to fan out on a group topic (gateways subscribe
    /// to those while the user is connected).
    async fn large_groups(&self, caller: &Caller) -> Result<Vec<String>, ChatError>;

    /// Ok when the backends the service needs are reachable.
    async fn ready(&self) -> Result<(), ChatError>;

    /// The largest body `send` accepts, in bytes.
    fn max_body_bytes(&self) -> usize;

    /// The most message bytes one `history` or `sync` page carries (see `Page::cost`).
    fn max_page_bytes(&self) -> usize;

    /// Groups with more members than this fan out on a group topic.
    fn large_group_members(&self) -> usize;
}
