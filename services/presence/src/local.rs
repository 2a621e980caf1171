//! In-process presence for `chatd`: a map of online sessions per user, transitions
//! published on the bus, last-seen times written to the store (one process, one owner).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chat_bus::Bus;
use chat_protocol::ids::UserId;
use chat_protocol::now_ms;
use chat_store::MessageStore;
use uuid::Uuid;

use crate::announce::announce;
use crate::policy::StoredPrivacy;
use crate::{PresenceView, SessionTracker};

pub struct LocalPresence {
    /// A user's sessions are one per device and few, so a vector: a hash set per online
    /// user cost ~100 bytes more per connection (BENCHMARKS.md, idle connections).
    /// Looked up for every recipient of every message (are they online?): seeded foldhash.
    sessions: Mutex<HashMap<UserId, Vec<Uuid>, foldhash::fast::RandomState>>,
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
}

impl LocalPresence {
    pub fn new(store: Arc<dyn MessageStore>, bus: Arc<dyn Bus>) -> Self {
        LocalPresence {
            sessions: Mutex::new(HashMap::default()),
            store,
            bus,
        }
    }

    async fn transition(&self, user_id: &UserId, online: bool) {
        let ts = now_ms();
        if let Err(e) = self.store.set_last_seen(user_id, ts).await {
            tracing::warn!(error = %e, %user_id, "could not persist last seen");
        }
        let policy = StoredPrivacy(self.store.clone());
        announce(self.bus.as_ref(), &policy, user_id, online, ts).await;
    }
}

#[async_trait]
impl SessionTracker for LocalPresence {
    async fn connected(&self, user_id: &UserId, session: Uuid) {
        let came_online = {
            let mut sessions = self.sessions.lock().expect("presence lock");
            let set = sessions.entry(user_id.clone()).or_default();
            if !set.contains(&session) {
                set.push(session);
            }
            set.len() == 1
        };
        if came_online {
            self.transition(user_id, true).await;
        }
    }

    async fn disconnected(&self, user_id: &UserId, session: Uuid) {
        let went_offline = {
            let mut sessions = self.sessions.lock().expect("presence lock");
            let removed_last = sessions.get_mut(user_id).is_some_and(|set| {
                match set.iter().position(|s| *s == session) {
                    Some(i) => {
                        set.swap_remove(i);
                        set.is_empty()
                    }
                    None => false,
                }
            });
            if removed_last {
                sessions.remove(user_id);
            }
            removed_last
        };
        if went_offline {
            self.transition(user_id, false).await;
        }
    }
}

#[async_trait]
impl PresenceView for LocalPresence {
    async fn is_online(&self, user_id: &UserId) -> bool {
        self.sessions
            .lock()
            .expect("presence lock")
            .contains_key(user_id)
    }

    async fn online(&self, user_ids: &[UserId]) -> Vec<bool> {
        let sessions = self.sessions.lock().expect("presence lock");
        user_ids.iter().map(|u| sessions.contains_key(u)).collect()
    }
}
