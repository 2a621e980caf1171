//! The message store: the durable source of truth for chats, members, messages, dedup
//! entries, watermarks, push devices and last-seen times, behind one trait so the embedded
//! SQLite store and networked stores are interchangeable.
#![forbid(unsafe_code)]

mod args;
pub mod conformance;
mod error;
pub mod scylla;
pub mod sqlite;
mod types;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{Chat, LastSeenVisibility, Member, Message, PrivacySettings, Role};

pub use args::{Backend, SqliteArgs, StoreArgs, SQLITE_FILE};
pub use error::{StoreError, StoreResult};
pub use scylla::{ScyllaConfig, ScyllaStore, ScyllaTls};
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use types::{
    DedupEntry, Page, PageFiller, PushDevice, SequencerState, UserChatState, Watermarks,
    MESSAGE_FRAME_ALLOWANCE,
};

/// Everything the services persist. Implementations must make every method safe to call
/// concurrently, and `append` durable before it returns.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Cheap round trip to the backend, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// Finishes queued writes and refuses new ones (at shutdown). Nothing to do for stores
    /// that write synchronously.
    fn close(&self) {}

    /// Creates `chat` with its members unless a chat with that id exists.
    /// Returns true when it was created now.
    async fn create_chat(&self, chat: &Chat) -> StoreResult<bool>;
    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<Chat>>;
    /// Adds members (or updates their role); adding an existing member is a no-op.
    async fn add_members(&self, chat_id: &ChatId, members: &[Member]) -> StoreResult<()>;
    /// Returns true when the user was a member.
    async fn remove_member(&self, chat_id: &ChatId, user_id: &UserId) -> StoreResult<bool>;
    /// Adds one to the chat's version (members or roles changed) and returns the new one.
    async fn bump_chat_version(&self, chat_id: &ChatId) -> StoreResult<u64>;
    /// Changes a member's role, keeping their place in the chat's member order (when they
    /// joined). Only for a member: the caller checks.
    async fn set_role(&self, chat_id: &ChatId, user_id: &UserId, role: Role) -> StoreResult<()>;
    /// Ids of the chats `user_id` is a member of.
    async fn chat_ids_of_user(&self, user_id: &UserId) -> StoreResult<Vec<ChatId>>;
    /// Every chat of the user with this device's and user's watermarks, unread count and
    /// last message.
    async fn chats_of_user(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Vec<UserChatState>>;
    /// Users who share at least one chat with `user_id` (not including the user).
    async fn contacts_of(&self, user_id: &UserId) -> StoreResult<Vec<UserId>>;
    /// Groups of `user_id` with more than `more_than` members (they fan out on a group topic).
    async fn large_groups_of(&self, user_id: &UserId, more_than: usize)
        -> StoreResult<Vec<ChatId>>;

    /// Whether two writers appending to one chat at once are detected atomically: the
    /// second message at a (chat, seq) always fails with `Conflict`, never overwrites.
    /// With such a store a partition's new owner may serve at once after taking it over
    /// (docs/architecture.md, "One writer per chat").
    fn appends_fenced(&self) -> bool {
        false
    }

    /// Durably writes messages (with their dedup entries). Writing a message that is
    /// stored already is a no-op, so a retried batch is harmless; a different message at
    /// an existing (chat_id, seq) fails the whole batch with `StoreError::Conflict`.
    async fn append(&self, messages: Vec<Message>) -> StoreResult<()>;
    /// Appends the sequencer may have in flight at once. More than one is safe only when
    /// `append` also refuses (with `Conflict`, writing nothing) a message that does not
    /// directly follow its chat's stored head: then a batch that failed cannot leave a
    /// gap under the batches sent after it. And the store must apply appends in the order
    /// their futures were first polled (the sequencer polls each once as it makes it),
    /// or a later one would be refused for a gap that the earlier one was about to fill.
    fn appends_in_flight(&self) -> usize {
        1
    }
    /// Head seq of a chat and its dedup entries written at or after `dedup_since_ms`.
    async fn sequencer_state(
        &self,
        chat_id: &ChatId,
        dedup_since_ms: i64,
    ) -> StoreResult<SequencerState>;
    /// The first messages with seq > `after_seq` that fit in `page`, ascending.
    async fn messages_after(
        &self,
        chat_id: &ChatId,
        after_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>>;
    /// The last messages with seq < `before_seq` that fit in `page` (counted from the
    /// newest), ascending.
    async fn messages_before(
        &self,
        chat_id: &ChatId,
        before_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>>;
    /// Deletes dedup entries older than `older_than_ms`; returns how many.
    async fn prune_dedup(&self, older_than_ms: i64) -> StoreResult<u64>;

    /// Raises the device's and the user's delivered watermark to `seq` (never lowers).
    /// Returns the user's new delivered watermark when it rose.
    async fn advance_delivered(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
        seq: u64,
    ) -> StoreResult<Option<u64>>;
    /// Raises the user's read watermark (never lowers). Returns the new value when it rose.
    async fn advance_read(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>>;
    async fn watermarks(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Watermarks>;

    /// Registers or replaces the push token of a user's device.
    async fn upsert_push_device(&self, device: &PushDevice) -> StoreResult<()>;
    /// Returns true when the device was registered.
    async fn delete_push_device(&self, user_id: &UserId, device_id: &DeviceId)
        -> StoreResult<bool>;
    /// Removes `device` only while it is still registered with `device.token`: a token a
    /// provider called dead must not take down the one the device registered since.
    /// Returns true when it was removed.
    async fn delete_push_token(&self, device: &PushDevice) -> StoreResult<bool>;
    async fn push_devices(&self, user_id: &UserId) -> StoreResult<Vec<PushDevice>>;

    async fn set_last_seen(&self, user_id: &UserId, ts_ms: i64) -> StoreResult<()>;
    async fn last_seen(&self, user_ids: &[UserId]) -> StoreResult<HashMap<UserId, i64>>;

    /// `blocker` blocks `blocked` (again is a no-op).
    async fn block(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<()>;
    /// Returns true when `blocker` had blocked `blocked`.
    async fn unblock(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool>;
    /// The users `blocker` blocks, sorted.
    async fn blocks_of(&self, blocker: &UserId) -> StoreResult<Vec<UserId>>;
    /// Whether `blocker` blocks `blocked` (one key, not the whole list).
    async fn is_blocked(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool>;
    /// The users who block `blocked`, sorted.
    async fn blockers_of(&self, blocked: &UserId) -> StoreResult<Vec<UserId>>;

    /// Stores a user's privacy settings.
    async fn set_privacy(&self, user_id: &UserId, settings: PrivacySettings) -> StoreResult<()>;
    /// The users among `user_ids` who hide their last seen from everyone.
    async fn last_seen_hidden(&self, user_ids: &[UserId]) -> StoreResult<HashSet<UserId>>;
    /// `user_id`'s privacy settings (the defaults if never set).
    async fn privacy(&self, user_id: &UserId) -> StoreResult<PrivacySettings> {
        let hidden = self.last_seen_hidden(std::slice::from_ref(user_id)).await?;
        Ok(PrivacySettings {
            last_seen: if hidden.is_empty() {
                LastSeenVisibility::Contacts
            } else {
                LastSeenVisibility::Nobody
            },
        })
    }

    /// `user_id` hides `chat_id` from their chat list up to `seq` (it shows again once a
    /// later message arrives). Hiding again moves the mark.
    async fn hide_chat(&self, user_id: &UserId, chat_id: &ChatId, seq: u64) -> StoreResult<()>;
    /// The chats `user_id` hid, with the seq each was hidden at.
    async fn hidden_chats(&self, user_id: &UserId) -> StoreResult<HashMap<ChatId, u64>>;
}
