//! Whether a direct chat is blocked (either member blocks the other), cached per chat so
//! the send path reads the store only when a chat is first seen or was invalidated. A
//! block is handled by the direct chat's owner, which invalidates its entry, so the
//! sequencer that orders the chat's sends sees it at once.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_api::{ChatId, UserId};
use chat_protocol::{Chat, ChatKind};
use chat_store::{MessageStore, StoreResult};

/// Whether either of the two users blocks the other.
pub(crate) async fn either_blocks(
    store: &dyn MessageStore,
    a: &UserId,
    b: &UserId,
) -> StoreResult<bool> {
    Ok(store.is_blocked(a, b).await? || store.is_blocked(b, a).await?)
}

pub(crate) struct BlockCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    /// chat id -> (ownership generation it was read under, blocked).
    chats: HashMap<ChatId, (u64, bool), foldhash::fast::RandomState>,
    /// Bumped on every invalidation, so a read that raced one is not cached.
    epoch: u64,
}

impl BlockCache {
    pub(crate) fn new(capacity: usize) -> Self {
        BlockCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// True when `chat` is a direct chat one of whose members blocks the other.
    pub(crate) async fn blocked(
        &self,
        store: &dyn MessageStore,
        chat: &Chat,
        owner_generation: u64,
    ) -> StoreResult<bool> {
        let [a, b] = match (chat.kind, chat.members.as_slice()) {
            (ChatKind::Direct, [a, b]) => [&a.user_id, &b.user_id],
            _ => return Ok(false),
        };
        let epoch = {
            let inner = self.inner.lock().expect("block cache lock");
            if let Some((generation, blocked)) = inner.chats.get(&chat.chat_id) {
                if *generation == owner_generation {
                    return Ok(*blocked);
                }
            }
            inner.epoch
        };
        let blocked =
            store.blocks_of(a).await?.contains(b) || store.blocks_of(b).await?.contains(a);
        let mut inner = self.inner.lock().expect("block cache lock");
        if inner.epoch == epoch {
            if inner.chats.len() >= self.capacity {
                inner.chats.clear();
            }
            inner
                .chats
                .insert(chat.chat_id.clone(), (owner_generation, blocked));
        }
        Ok(blocked)
    }

    pub(crate) fn invalidate(&self, chat_id: &ChatId) {
        let mut inner = self.inner.lock().expect("block cache lock");
        inner.chats.remove(chat_id);
        inner.epoch += 1;
    }
}
