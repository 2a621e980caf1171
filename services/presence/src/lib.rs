//! Presence: which users are online (from their first device connecting to their last
//! disconnecting), when each was last seen, and the `presence` events those transitions
//! publish on the bus. Split by role: gateways track their sessions (`SessionTracker`),
//! chat services and push workers only read who is online (`PresenceView`), and one owner
//! writes last-seen times to the store (in `chatd` the presence itself; scaled out, the
//! chat-presence service, which also sweeps the users of dead gateways offline).
#![forbid(unsafe_code)]

mod announce;
mod local;
mod policy;
mod redis;

use async_trait::async_trait;
use chat_protocol::ids::UserId;
use uuid::Uuid;

pub use local::LocalPresence;
pub use policy::{LastSeenPolicy, ShowAll, StoredPrivacy};
pub use redis::{LastSeenRecorder, PresenceSweeper, RedisPresenceView, RedisSessions};

/// A gateway's side: its sessions coming and going.
#[async_trait]
pub trait SessionTracker: Send + Sync + 'static {
    /// A session of `user_id` connected.
    async fn connected(&self, user_id: &UserId, session: Uuid);
    /// A session of `user_id` closed.
    async fn disconnected(&self, user_id: &UserId, session: Uuid);
}

/// Everyone else's side: who is online now.
#[async_trait]
pub trait PresenceView: Send + Sync + 'static {
    async fn is_online(&self, user_id: &UserId) -> bool;
    /// Whether each user is online, in the order asked.
    async fn online(&self, user_ids: &[UserId]) -> Vec<bool>;
}
