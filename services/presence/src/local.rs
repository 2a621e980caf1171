//! In-process presence for `chatd`: a map of online sessions per user, last-seen times
//! persisted in the store, transitions published on the bus.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chat_bus::Bus;
use chat_protocol::{now_ms, PresenceEntry};
use chat_store::MessageStore;
use uuid::Uuid;

use crate::announce::announce;
use crate::Presence;

pub struct LocalPresence {
    sessions: Mutex<HashMap<String, HashSet<Uuid>>>,
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
}

impl LocalPresence {
    pub fn new(store: Arc<dyn MessageStore>, bus: Arc<dyn Bus>) -> Self {
        LocalPresence {
            sessions: Mutex::new(HashMap::new()),
            store,
            bus,
        }
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn connected(&self, user_id: &str, session: Uuid) {
        let came_online = {
            let mut sessions = self.sessions.lock().expect("presence lock");
            let set = sessions.entry(user_id.to_owned()).or_default();
            set.insert(session);
            set.len() == 1
        };
        if came_online {
            announce(
                self.store.as_ref(),
                self.bus.as_ref(),
                user_id,
                true,
                now_ms(),
            )
            .await;
        }
    }

    async fn disconnected(&self, user_id: &str, session: Uuid) {
        let went_offline = {
            let mut sessions = self.sessions.lock().expect("presence lock");
            let removed_last = sessions
                .get_mut(user_id)
                .is_some_and(|set| set.remove(&session) && set.is_empty());
            if removed_last {
                sessions.remove(user_id);
            }
            removed_last
        };
        if went_offline {
            announce(
                self.store.as_ref(),
                self.bus.as_ref(),
                user_id,
                false,
                now_ms(),
            )
            .await;
        }
    }

    async fn is_online(&self, user_id: &str) -> bool {
        self.sessions
            .lock()
            .expect("presence lock")
            .contains_key(user_id)
    }

    async fn query(&self, user_ids: &[String]) -> Vec<PresenceEntry> {
        let last_seen = self.store.last_seen(user_ids).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read last seen");
            HashMap::new()
        });
        let sessions = self.sessions.lock().expect("presence lock");
        user_ids
            .iter()
            .map(|u| PresenceEntry {
                user_id: u.clone(),
                online: sessions.contains_key(u),
                last_seen: last_seen.get(u).copied(),
                error: None,
            })
            .collect()
    }
}
