//! Blocking: one user refuses another. A blocked user cannot start a direct chat with the
//! blocker or send in theirs (nor can the blocker, until they unblock), and stops seeing
//! the blocker's presence; nothing else tells them they are blocked.

use chat_api::{Caller, ChatError, UserId};
use chat_protocol::ids::{direct_chat_id, is_valid_id};

use super::ChatService;
use crate::blocks::either_blocks;
use crate::errors::store_error;

impl ChatService {
    pub(super) async fn block_user(
        &self,
        caller: &Caller,
        user_id: &UserId,
    ) -> Result<(), ChatError> {
        Self::check_target(caller, user_id)?;
        let _changing = self.mutations.begin();
        self.owns_direct_chat(caller, user_id)?;
        let max = self.config.max_blocks;
        let blocked = self
            .store
            .blocks_of(&caller.user_id)
            .await
            .map_err(store_error)?;
        if blocked.len() >= max && !blocked.contains(user_id) {
            metrics::counter!("chat_limit_hits_total", "limit" => "blocks_per_user").increment(1);
            return Err(ChatError::too_large(format!("at most {max} blocked users")));
        }
        self.store
            .block(&caller.user_id, user_id)
            .await
            .map_err(store_error)?;
        // Their direct chat's sequencer reads the block afresh (block calls go to that
        // chat's owner), and the blocked user's watches of the caller end.
        self.blocks
            .invalidate(&direct_chat_id(&caller.user_id, user_id));
        self.fanout.presence_revoked(user_id, &caller.user_id);
        metrics::counter!("chat_blocks_total", "change" => "block").increment(1);
        Ok(())
    }

    pub(super) async fn unblock_user(
        &self,
        caller: &Caller,
        user_id: &UserId,
    ) -> Result<bool, ChatError> {
        Self::check_target(caller, user_id)?;
        let _changing = self.mutations.begin();
        self.owns_direct_chat(caller, user_id)?;
        let was = self
            .store
            .unblock(&caller.user_id, user_id)
            .await
            .map_err(store_error)?;
        self.blocks
            .invalidate(&direct_chat_id(&caller.user_id, user_id));
        metrics::counter!("chat_blocks_total", "change" => "unblock").increment(1);
        Ok(was)
    }

    /// Whether either of the two blocks the other.
    pub(super) async fn blocked_between(&self, a: &UserId, b: &UserId) -> Result<bool, ChatError> {
        either_blocks(self.store.as_ref(), a, b)
            .await
            .map_err(store_error)
    }

    /// Block changes are handled by the owner of the two users' direct chat (whether or not
    /// it exists yet), so the sequencer that orders its sends sees them at once; another
    /// instance answers `moved` and the caller's client finds the owner.
    fn owns_direct_chat(&self, caller: &Caller, user_id: &UserId) -> Result<(), ChatError> {
        let chat_id = direct_chat_id(&caller.user_id, user_id);
        self.ownership
            .owns(&chat_id)
            .map(|_| ())
            .ok_or_else(ChatError::moved)
    }

    fn check_target(caller: &Caller, user_id: &UserId) -> Result<(), ChatError> {
        if !is_valid_id(user_id) {
            return Err(ChatError::bad_request("invalid user id"));
        }
        if *user_id == caller.user_id {
            return Err(ChatError::bad_request("you cannot block yourself"));
        }
        Ok(())
    }
}
