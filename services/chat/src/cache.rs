//! Chat metadata (kind, members, roles) cached in memory, so membership checks on the hot
//! paths (send, recv, typing) do not read the store. Member changes invalidate entries;
//! entries loaded under an older ownership generation are reloaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_api::ChatId;
use chat_protocol::Chat;
use chat_store::{MessageStore, StoreResult};

pub(crate) struct ChatCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

struct Inner {
    /// chat id -> (ownership generation it was loaded under, chat).
    /// Looked up for every send, with seeded foldhash rather than SipHash.
    chats: HashMap<ChatId, (u64, Arc<Chat>), foldhash::fast::RandomState>,
    /// Bumped on every invalidation, so a load that raced one is not cached.
    generation: u64,
}

impl ChatCache {
    pub(crate) fn new(capacity: usize) -> Self {
        ChatCache {
            inner: Mutex::new(Inner {
                chats: HashMap::default(),
                generation: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    /// The chat, from memory or else the store; `None` when it does not exist. While this
    /// instance did not own the chat another may have changed its members, so an entry
    /// cached under another `owner_generation` is loaded again.
    pub(crate) async fn get(
        &self,
        store: &dyn MessageStore,
        chat_id: &ChatId,
        owner_generation: u64,
    ) -> StoreResult<Option<Arc<Chat>>> {
        let generation = {
            let inner = self.inner.lock().expect("cache lock");
            if let Some((cached_under, chat)) = inner.chats.get(chat_id) {
                if *cached_under == owner_generation {
                    return Ok(Some(chat.clone()));
                }
            }
            inner.generation
        };
        let Some(chat) = store.get_chat(chat_id).await? else {
            return Ok(None);
        };
        let chat = Arc::new(chat);
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation == generation {
            if inner.chats.len() >= self.capacity {
                // Crude but bounded: start over rather than track recency on every hit.
                inner.chats.clear();
            }
            inner
                .chats
                .insert(chat_id.clone(), (owner_generation, chat.clone()));
        }
        Ok(Some(chat))
    }

    pub(crate) fn invalidate(&self, chat_id: &ChatId) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.chats.remove(chat_id);
        inner.generation += 1;
    }
}
