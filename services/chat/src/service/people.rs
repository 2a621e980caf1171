//! Who a caller may see (and their presence), and the caller's push devices.

use std::collections::{HashMap, HashSet};

use chat_api::{Caller, ChatError, DeviceId, UserId};
use chat_protocol::ids::is_valid_id;
use chat_protocol::{ErrorCode, PresenceEntry, PushPlatform};
use chat_store::PushDevice;

use super::ChatService;
use crate::errors::store_error;

const MAX_PUSH_TOKEN_BYTES: usize = 4096;

impl ChatService {
    /// Users in `user_ids` who share a chat with the caller and do not block them (and the
    /// caller).
    pub(super) async fn visible(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<HashSet<UserId>, ChatError> {
        let mut contacts: HashSet<UserId> = self
            .store
            .contacts_of(&caller.user_id)
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        // Whoever blocks the caller is invisible to them, contact or not.
        for blocker in self
            .store
            .blockers_of(&caller.user_id)
            .await
            .map_err(store_error)?
        {
            contacts.remove(&blocker);
        }
        Ok(user_ids
            .iter()
            .filter(|u| **u == caller.user_id || contacts.contains(*u))
            .cloned()
            .collect())
    }

    /// Online state and last seen of the visible users; the others marked forbidden. A user
    /// named twice is answered once, in the place of the first mention.
    pub(super) async fn presence_of(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<Vec<PresenceEntry>, ChatError> {
        let mut seen = HashSet::new();
        let user_ids: Vec<UserId> = user_ids
            .iter()
            .filter(|u| seen.insert(*u))
            .cloned()
            .collect();
        let user_ids = user_ids.as_slice();
        let visible = self.visible(caller, user_ids).await?;
        let allowed: Vec<UserId> = user_ids
            .iter()
            .filter(|u| visible.contains(*u))
            .cloned()
            .collect();
        let online = self.presence.online(&allowed).await;
        let mut last_seen = self.store.last_seen(&allowed).await.map_err(store_error)?;
        // Users who hide their last seen: from everyone but themselves.
        let hidden = self
            .store
            .last_seen_hidden(&allowed)
            .await
            .map_err(store_error)?;
        last_seen.retain(|user, _| *user == caller.user_id || !hidden.contains(user));
        let mut known: HashMap<UserId, PresenceEntry> = allowed
            .into_iter()
            .zip(online)
            .map(|(user, online)| {
                let entry = PresenceEntry {
                    user_id: user.clone(),
                    online,
                    last_seen: last_seen.get(&user).copied(),
                    error: None,
                };
                (user, entry)
            })
            .collect();
        Ok(user_ids
            .iter()
            .map(|u| {
                known.remove(u).unwrap_or_else(|| PresenceEntry {
                    user_id: u.clone(),
                    online: false,
                    last_seen: None,
                    error: Some(ErrorCode::Forbidden.as_str().into()),
                })
            })
            .collect())
    }

    pub(super) async fn register(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError> {
        if !is_valid_id(device_id) {
            return Err(ChatError::bad_request("invalid device_id"));
        }
        if token.is_empty() || token.len() > MAX_PUSH_TOKEN_BYTES {
            return Err(ChatError::bad_request("token must be 1-4096 bytes"));
        }
        // Counted before the write, so two registrations at once may pass one over: the
        // bound is on what one user can make every push fan out to, not exact.
        let max = self.config.max_push_devices;
        let registered = self
            .store
            .push_devices(&caller.user_id)
            .await
            .map_err(store_error)?;
        if registered.len() >= max && !registered.iter().any(|d| d.device_id == *device_id) {
            metrics::counter!("chat_limit_hits_total", "limit" => "push_devices_per_user")
                .increment(1);
            return Err(ChatError::too_large(format!(
                "at most {max} devices registered for push"
            )));
        }
        let device = PushDevice {
            user_id: caller.user_id.clone(),
            device_id: device_id.clone(),
            platform,
            token: token.to_owned(),
        };
        self.store
            .upsert_push_device(&device)
            .await
            .map_err(store_error)
    }

    pub(super) async fn unregister(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
    ) -> Result<bool, ChatError> {
        self.store
            .delete_push_device(&caller.user_id, device_id)
            .await
            .map_err(store_error)
    }
}
