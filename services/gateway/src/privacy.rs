//! The gateway's answer to "may this user's presence frames carry their last seen?": it
//! opens no store, so it asks the chat service for the user's privacy setting.

use std::sync::Arc;

use async_trait::async_trait;
use chat_api::{Caller, ChatApi, DeviceId, UserId};
use chat_presence::LastSeenPolicy;
use chat_protocol::LastSeenVisibility;

pub struct ChatServicePrivacy(pub Arc<dyn ChatApi>);

#[async_trait]
impl LastSeenPolicy for ChatServicePrivacy {
    async fn shows_last_seen(&self, user_id: &UserId) -> bool {
        let user = Caller {
            user_id: user_id.clone(),
            device_id: DeviceId::from("presence"),
            session: None,
        };
        match self.0.privacy(&user).await {
            Ok(settings) => settings.last_seen == LastSeenVisibility::Contacts,
            Err(e) => {
                // Unknown: hide it rather than show what the user may have hidden.
                tracing::warn!(error = %e, %user_id, "privacy setting unavailable; last seen hidden");
                false
            }
        }
    }
}
