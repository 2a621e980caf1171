//! Chat metadata (kind, members, roles) cached in memory, so membership checks on the hot
//! paths (send, recv, typing) do not read the store. Member changes invalidate entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::Chat;
use chat_store::{MessageStore, StoreResult};

pub(crate) struct ChatCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

struct Inner {
    chats: HashMap<String, Arc<Chat>>,
    /// Bumped on every invalidation, so a load that raced one is not cached.
    generation: u64,
}

impl ChatCache {
    pub(crate) fn new(capacity: usize) -> Self {
        ChatCache {
            inner: Mutex::new(Inner {
                chats: HashMap::new(),
                generation: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    /// The chat, from memory or else the store. `None` when it does not exist.
    pub(crate) async fn get(
        &self,
        store: &dyn MessageStore,
        chat_id: &str,
    ) -> StoreResult<Option<Arc<Chat>>> {
        let generation = {
            let inner = self.inner.lock().expect("cache lock");
            if let Some(chat) = inner.chats.get(chat_id) {
                return Ok(Some(chat.clone()));
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
            inner.chats.insert(chat_id.to_owned(), chat.clone());
        }
        Ok(Some(chat))
    }

    pub(crate) fn invalidate(&self, chat_id: &str) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.chats.remove(chat_id);
        inner.generation += 1;
    }
}
