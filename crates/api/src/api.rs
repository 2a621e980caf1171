//! `ChatApi`: every call a gateway makes of the chat service. Each method's request and
//! reply types are fixed by its signature, so a caller and an implementation cannot
//! disagree about what a call returns; the networked client and the in-process service
//! implement the same trait.

use std::collections::HashSet;

use async_trait::async_trait;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{Chat, ChatListEntry, Message, PresenceEntry, PrivacySettings, PushPlatform};
use futures_util::future::BoxFuture;

use crate::error::ChatError;
use crate::types::{
    Caller, CreateChat, CreatedChat, HistoryQuery, SendOutcome, SendRequest, SyncRequest,
    SyncResult,
};

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

    /// Creates a chat (or finds the pair's direct chat).
    async fn create_chat(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<CreatedChat, ChatError>;
    async fn list_chats(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError>;
    async fn get_chat(&self, caller: &Caller, chat_id: &ChatId) -> Result<Chat, ChatError>;
    async fn add_members(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_ids: Vec<UserId>,
    ) -> Result<Chat, ChatError>;
    async fn remove_member(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_id: &UserId,
    ) -> Result<(), ChatError>;

    async fn history(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError>;
    async fn sync(&self, caller: &Caller, request: SyncRequest) -> Result<SyncResult, ChatError>;

    async fn mark_delivered(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError>;
    async fn mark_read(&self, caller: &Caller, chat_id: &ChatId, seq: u64)
        -> Result<(), ChatError>;
    async fn typing(&self, caller: &Caller, chat_id: &ChatId) -> Result<(), ChatError>;

    /// Which of `user_ids` the caller may see the presence of (those sharing a chat).
    async fn visible_users(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<HashSet<UserId>, ChatError>;
    /// The presence of each of `user_ids`, in order; users the caller may not see are
    /// marked forbidden.
    async fn presence(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<Vec<PresenceEntry>, ChatError>;

    async fn register_device(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError>;
    /// True when the device was registered.
    async fn unregister_device(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
    ) -> Result<bool, ChatError>;

    /// The caller's privacy settings.
    async fn privacy(&self, caller: &Caller) -> Result<PrivacySettings, ChatError>;
    async fn set_privacy(
        &self,
        caller: &Caller,
        settings: PrivacySettings,
    ) -> Result<(), ChatError>;

    /// The caller blocks `user_id`: no direct chat between them starts or takes messages,
    /// and `user_id` no longer sees the caller's presence. Blocking again is a no-op.
    async fn block(&self, caller: &Caller, user_id: &UserId) -> Result<(), ChatError>;
    /// True when the caller had blocked `user_id`.
    async fn unblock(&self, caller: &Caller, user_id: &UserId) -> Result<bool, ChatError>;
    /// The users the caller blocks, sorted.
    async fn blocks(&self, caller: &Caller) -> Result<Vec<UserId>, ChatError>;

    /// The caller's groups large enough to fan out on a group topic (gateways follow
    /// those while the user is connected).
    async fn large_groups(&self, caller: &Caller) -> Result<Vec<ChatId>, ChatError>;

    /// Ok when the backends the service needs are reachable.
    async fn ready(&self) -> Result<(), ChatError>;

    /// The largest body `send` accepts, in bytes.
    fn max_body_bytes(&self) -> usize;

    /// The most message bytes one `history` or `sync` page carries.
    fn max_page_bytes(&self) -> usize;
}
