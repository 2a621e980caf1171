//! The gateway's connection registry: which sessions of which users are connected here
//! (one per device: a new connection of a device replaces the old), which large groups
//! those users are in, who watches whose presence (bounded per connection and per user),
//! and the bus handler that hands each event to the right connections' outbound queues
//! without ever blocking — a queue over its bytes marks its connection as too slow.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use chat_bus::{group_topic, presence_topic, user_topic, Bus, BusMessage};
use chat_protocol::{ChatEvent, ChatKind, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::limits::{record_hit, MemoryBudget, Reservation};

/// One connected session as the registry sees it.
pub(crate) struct Connection {
    pub(crate) session: Uuid,
    pub(crate) user_id: String,
    pub(crate) device_id: String,
    pub(crate) outbound: mpsc::Sender<Outbound>,
    /// Bytes of events in `outbound`, not yet written.
    pub(crate) queued_bytes: AtomicUsize,
    /// Cancelled when the connection must close because it cannot keep up.
    pub(crate) kick: CancellationToken,
    /// Cancelled when a newer connection of the same device took this one's place.
    pub(crate) replaced: CancellationToken,
}

/// An event queued for a connection, holding its share of the server's outbound budget.
pub(crate) struct Outbound {
    pub(crate) frame: Utf8Bytes,
    pub(crate) _memory: Reservation,
}

impl Connection {
    /// Bytes of events queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Marks `bytes` of queued events as written.
    pub(crate) fn written(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyDevices;

/// A `presence_sub` that would take its connection or user past their watch limits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyWatches {
    pub(crate) max: usize,
}

/// What the registry bounds.
#[derive(Debug, Clone)]
pub(crate) struct RegistryLimits {
    pub(crate) max_devices_per_user: usize,
    pub(crate) outbound_queue_bytes: usize,
    pub(crate) max_watches: usize,
    pub(crate) max_watches_per_user: usize,
}

#[derive(Default)]
struct Maps {
    by_user: HashMap<String, Vec<Arc<Connection>>>,
    /// watched user -> sessions watching them.
    watchers: HashMap<String, HashMap<Uuid, Arc<Connection>>>,
    /// session -> users it watches, to undo on disconnect.
    watching: HashMap<Uuid, HashSet<String>>,
    /// watching user -> presence watches held by all their sessions.
    watches_of_user: HashMap<String, usize>,
    /// large group -> its members connected here.
    group_members: HashMap<String, HashSet<String>>,
    /// user connected here -> their large groups.
    groups_of_user: HashMap<String, HashSet<String>>,
}

pub(crate) struct Registry {
    maps: RwLock<Maps>,
    bus: Arc<dyn Bus>,
    limits: RegistryLimits,
    outbound_memory: Arc<MemoryBudget>,
    large_group_members: usize,
}

/// A change to a user's large-group membership seen in a `chat` frame.
enum GroupChange {
    Join(String),
    Leave(String),
}

impl Registry {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        limits: RegistryLimits,
        outbound_memory: Arc<MemoryBudget>,
        large_group_members: usize,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry {
            maps: RwLock::new(Maps::default()),
            bus: bus.clone(),
            limits,
            outbound_memory,
            large_group_members,
        });
        let weak = Arc::downgrade(&registry);
        bus.set_handler(Arc::new(move |topic, message| {
            if let Some(registry) = weak.upgrade() {
                registry.dispatch(topic, message);
            }
        }));
        registry
    }

    /// Whether `device_id` of `user_id` may connect: it is connected already (the new
    /// connection will replace the old), or the user has room for one more device.
    pub(crate) fn has_room_for(&self, user_id: &str, device_id: &str) -> bool {
        let maps = self.maps.read().expect("registry lock");
        let conns = maps
            .by_user
            .get(user_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        conns.iter().any(|c| c.device_id == device_id)
            || conns.len() < self.limits.max_devices_per_user
    }

    /// Registers a connection; an older connection of the same device is replaced (told
    /// through its `replaced` token) and returned.
    pub(crate) fn register(
        &self,
        connection: Arc<Connection>,
    ) -> Result<Option<Arc<Connection>>, TooManyDevices> {
        let (first, replaced) = {
            let mut maps = self.maps.write().expect("registry lock");
            let conns = maps.by_user.entry(connection.user_id.clone()).or_default();
            let same_device = conns
                .iter()
                .position(|c| c.device_id == connection.device_id);
            let replaced = match same_device {
                Some(i) => Some(conns.swap_remove(i)),
                None if conns.len() >= self.limits.max_devices_per_user => {
                    if conns.is_empty() {
                        maps.by_user.remove(&connection.user_id);
                    }
                    record_hit("devices_per_user");
                    return Err(TooManyDevices);
                }
                None => None,
            };
            conns.push(connection.clone());
            (conns.len() == 1 && replaced.is_none(), replaced)
        };
        if first {
            self.bus.subscribe(&user_topic(&connection.user_id));
        }
        if let Some(old) = &replaced {
            metrics::counter!("chat_ws_replaced_total").increment(1);
            old.replaced.cancel();
        }
        metrics::gauge!("chat_ws_connections").increment(1.0);
        Ok(replaced)
    }

    pub(crate) fn unregister(&self, connection: &Connection) {
        let mut unsubscribe = Vec::new();
        {
            let mut maps = self.maps.write().expect("registry lock");
            if let Some(conns) = maps.by_user.get_mut(&connection.user_id) {
                conns.retain(|c| c.session != connection.session);
                if conns.is_empty() {
                    maps.by_user.remove(&connection.user_id);
                    unsubscribe.push(user_topic(&connection.user_id));
                    for chat_id in maps
                        .groups_of_user
                        .remove(&connection.user_id)
                        .unwrap_or_default()
                    {
                        if leave_group(&mut maps, &chat_id, &connection.user_id) {
                            unsubscribe.push(group_topic(&chat_id));
                        }
                    }
                }
            }
            let watched_by_session = maps
                .watching
                .remove(&connection.session)
                .unwrap_or_default();
            release_watches(&mut maps, &connection.user_id, watched_by_session.len());
            for watched in watched_by_session {
                if let Some(watchers) = maps.watchers.get_mut(&watched) {
                    watchers.remove(&connection.session);
                    if watchers.is_empty() {
                        maps.watchers.remove(&watched);
                        unsubscribe.push(presence_topic(&watched));
                    }
                }
            }
        }
        for topic in unsubscribe {
            self.bus.unsubscribe(&topic);
        }
        metrics::gauge!("chat_ws_connections").decrement(1.0);
    }

    /// Records that `user_id` (if still connected here) is in these large groups, and
    /// subscribes the groups' topics this gateway did not have yet.
    pub(crate) fn join_groups(&self, user_id: &str, chat_ids: &[String]) {
        let mut subscribe = Vec::new();
        {
            let mut maps = self.maps.write().expect("registry lock");
            if !maps.by_user.contains_key(user_id) {
                return;
            }
            for chat_id in chat_ids {
                let members = maps.group_members.entry(chat_id.clone()).or_default();
                if members.is_empty() {
                    subscribe.push(group_topic(chat_id));
                }
                members.insert(user_id.to_owned());
                maps.groups_of_user
                    .entry(user_id.to_owned())
                    .or_default()
                    .insert(chat_id.clone());
            }
        }
        for topic in subscribe {
            self.bus.subscribe(&topic);
        }
    }

    fn leave_groups(&self, user_id: &str, chat_id: &str) {
        let empty = {
            let mut maps = self.maps.write().expect("registry lock");
            if let Some(groups) = maps.groups_of_user.get_mut(user_id) {
                groups.remove(chat_id);
            }
            leave_group(&mut maps, chat_id, user_id)
        };
        if empty {
            self.bus.unsubscribe(&group_topic(chat_id));
        }
    }

    /// Large-group membership news in a `chat` frame for `user_id`. Only `chat` frames are
    /// parsed; they are rare, and the prefix check keeps every other frame cheap.
    fn group_change(&self, user_id: &str, frame: &str) -> Option<GroupChange> {
        if !frame.starts_with(r#"{"type":"chat""#) {
            return None;
        }
        let ServerFrame::Chat { event, chat } = serde_json::from_str::<ServerFrame>(frame).ok()?
        else {
            return None;
        };
        let large = chat.kind == ChatKind::Group && chat.members.len() > self.large_group_members;
        match event {
            ChatEvent::Removed => Some(GroupChange::Leave(chat.chat_id)),
            _ if large && chat.member(user_id).is_some() => Some(GroupChange::Join(chat.chat_id)),
            _ => None,
        }
    }

    /// Makes `connection` receive presence changes of `users` (adding to what it watches),
    /// unless that takes it or its user past the watch limits.
    pub(crate) fn watch_presence(
        &self,
        connection: &Arc<Connection>,
        users: &HashSet<String>,
    ) -> Result<(), TooManyWatches> {
        let mut subscribe = Vec::new();
        {
            let mut maps = self.maps.write().expect("registry lock");
            let watching = maps.watching.get(&connection.session);
            let new = users
                .iter()
                .filter(|u| !watching.is_some_and(|w| w.contains(*u)))
                .count();
            let of_session = watching.map_or(0, HashSet::len);
            let of_user = maps
                .watches_of_user
                .get(&connection.user_id)
                .copied()
                .unwrap_or(0);
            if of_session + new > self.limits.max_watches {
                record_hit("presence_watches");
                return Err(TooManyWatches {
                    max: self.limits.max_watches,
                });
            }
            if of_user + new > self.limits.max_watches_per_user {
                record_hit("presence_watches_per_user");
                return Err(TooManyWatches {
                    max: self.limits.max_watches_per_user,
                });
            }
            for user in users {
                let watchers = maps.watchers.entry(user.clone()).or_default();
                if watchers.is_empty() {
                    subscribe.push(presence_topic(user));
                }
                watchers.insert(connection.session, connection.clone());
                maps.watching
                    .entry(connection.session)
                    .or_default()
                    .insert(user.clone());
            }
            *maps
                .watches_of_user
                .entry(connection.user_id.clone())
                .or_default() += new;
        }
        for topic in subscribe {
            self.bus.subscribe(&topic);
        }
        Ok(())
    }

    /// The bus handler: never blocks; a full queue marks its connection as too slow.
    fn dispatch(&self, topic: &str, message: &BusMessage) {
        let Ok(frame) = Utf8Bytes::try_from(message.frame.clone()) else {
            tracing::error!(topic, "bus message is not UTF-8; dropped");
            return;
        };
        if let Some(user) = topic.strip_prefix("user:") {
            match self.group_change(user, frame.as_str()) {
                Some(GroupChange::Join(chat_id)) => self.join_groups(user, &[chat_id]),
                Some(GroupChange::Leave(chat_id)) => self.leave_groups(user, &chat_id),
                None => {}
            }
        }
        let maps = self.maps.read().expect("registry lock");
        if let Some(user) = topic.strip_prefix("user:") {
            if message.skip_user.as_deref() == Some(user) {
                return;
            }
            for conn in maps.by_user.get(user).into_iter().flatten() {
                if Some(conn.session) != message.skip_session {
                    self.deliver(conn, &frame);
                }
            }
        } else if let Some(chat_id) = topic.strip_prefix("group:") {
            let members = maps.group_members.get(chat_id).into_iter().flatten();
            for user in members.filter(|u| message.skip_user.as_deref() != Some(u.as_str())) {
                for conn in maps.by_user.get(user).into_iter().flatten() {
                    if Some(conn.session) != message.skip_session {
                        self.deliver(conn, &frame);
                    }
                }
            }
        } else if let Some(user) = topic.strip_prefix("presence:") {
            for conn in maps.watchers.get(user).into_iter().flat_map(|w| w.values()) {
                self.deliver(conn, &frame);
            }
        }
    }

    /// Queues `frame` for `conn`, or marks it too slow when its queue (or every queue
    /// together) is over its bytes. Never waits.
    fn deliver(&self, conn: &Connection, frame: &Utf8Bytes) {
        if conn.kick.is_cancelled() {
            return;
        }
        let bytes = frame.as_str().len();
        match self.enqueue(conn, frame) {
            Ok(()) => metrics::counter!("chat_ws_frames_out_total").increment(1),
            Err(refusal) => {
                conn.written(bytes);
                if let Refusal::OverLimit(limit) = refusal {
                    record_hit(limit);
                    tracing::info!(user_id = %conn.user_id, session = %conn.session, limit, "slow consumer disconnected");
                    metrics::counter!("chat_ws_slow_consumers_total").increment(1);
                    conn.kick.cancel();
                }
            }
        }
    }

    /// Counts the frame's bytes against the connection and the server, then queues it.
    fn enqueue(&self, conn: &Connection, frame: &Utf8Bytes) -> Result<(), Refusal> {
        let bytes = frame.as_str().len();
        let queued = conn.queued_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if queued > self.limits.outbound_queue_bytes {
            return Err(Refusal::OverLimit("outbound_queue_bytes"));
        }
        let memory = self
            .outbound_memory
            .try_reserve(bytes)
            .ok_or(Refusal::OverLimit("outbound_memory"))?;
        let item = Outbound {
            frame: frame.clone(),
            _memory: memory,
        };
        conn.outbound.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refusal::OverLimit("outbound_queue"),
            mpsc::error::TrySendError::Closed(_) => Refusal::Gone,
        })
    }
}

/// Why an event was not queued for a connection.
enum Refusal {
    /// Over this limit: the connection is too slow.
    OverLimit(&'static str),
    /// The connection is ending; there is nothing to deliver to.
    Gone,
}

/// Gives back `count` presence watches of `user`.
fn release_watches(maps: &mut Maps, user: &str, count: usize) {
    if let Some(n) = maps.watches_of_user.get_mut(user) {
        *n = n.saturating_sub(count);
        if *n == 0 {
            maps.watches_of_user.remove(user);
        }
    }
}

/// Removes a user from a group's local members; true when nobody here is left in it.
fn leave_group(maps: &mut Maps, chat_id: &str, user_id: &str) -> bool {
    let Some(members) = maps.group_members.get_mut(chat_id) else {
        return false;
    };
    members.remove(user_id);
    if members.is_empty() {
        maps.group_members.remove(chat_id);
        return true;
    }
    false
}
