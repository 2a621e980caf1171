//! Whether a user's live presence frames may carry when they were last seen: users who
//! chose "nobody" (their privacy setting) get frames with a null `last_seen`.

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::ids::UserId;
use chat_store::MessageStore;

#[async_trait]
pub trait LastSeenPolicy: Send + Sync + 'static {
    /// True when `user_id`'s watchers may see their last-seen time.
    async fn shows_last_seen(&self, user_id: &UserId) -> bool;
}

/// Shows everyone's (tests of presence itself).
pub struct ShowAll;

#[async_trait]
impl LastSeenPolicy for ShowAll {
    async fn shows_last_seen(&self, _user_id: &UserId) -> bool {
        true
    }
}

/// The setting as stored (`chatd`, and the presence service's sweeper).
pub struct StoredPrivacy(pub Arc<dyn MessageStore>);

#[async_trait]
impl LastSeenPolicy for StoredPrivacy {
    async fn shows_last_seen(&self, user_id: &UserId) -> bool {
        match self.0.last_seen_hidden(std::slice::from_ref(user_id)).await {
            Ok(hidden) => hidden.is_empty(),
            Err(e) => {
                // Unknown: hide it rather than show what the user may have hidden.
                tracing::warn!(error = %e, %user_id, "privacy setting unreadable; last seen hidden");
                false
            }
        }
    }
}
