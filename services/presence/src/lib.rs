//! Presence: which users are online (from their first device connecting to their last
//! disconnecting), when each was last seen, and the `presence` events those transitions
//! publish on the bus.
#![forbid(unsafe_code)]

mod announce;
mod local;
pub mod process;
mod redis_presence;

use async_trait::async_trait;
use chat_protocol::PresenceEntry;
use uuid::Uuid;

pub use local::LocalPresence;
pub use redis_presence::{PresenceSweeper, RedisPresence};

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// A session of `user_id` connected.
    async fn connected(&self, user_id: &str, session: Uuid);
    /// A session of `user_id` closed.
    async fn disconnected(&self, user_id: &str, session: Uuid);
    async fn is_online(&self, user_id: &str) -> bool;
    /// Current presence of each user, in the order asked.
    async fn query(&self, user_ids: &[String]) -> Vec<PresenceEntry>;
}
