//! The gateway's connection registry: which sessions of which users are connected here
//! (one per device: a new connection of a device replaces the old), which large groups
//! those users are in, who watches whose presence (bounded per connection and per user),
//! and the bus handler that hands each event to the right connections' outbound queues
//! without ever blocking — a queue over its bytes marks its connection as too slow.
//!
//! Bus subscriptions change while the registry's lock is held. The bus keeps a set of
//! topics, not counts, so a subscribe and an unsubscribe must reach it in the order they
//! were decided: applied after the lock, a user's last connection leaving and their next
//! one arriving could reach it the other way round, and leave a connected user
//! unsubscribed (no live frames until they reconnect).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use chat_api::{ChatId, DeviceId, UserId};
use chat_bus::{Bus, BusEvent, Topic};
use chat_ops::KeptCounter;
use uuid::Uuid;

use crate::limits::{record_hit, MemoryBudget, Reservation};
use crate::outbound::{OutboundQueue, Refused, Stop};

/// Frames queued to connections: kept, as it counts every frame.
static FRAMES_OUT: KeptCounter = KeptCounter::new("chat_ws_frames_out_total");

/// One connected session as the registry sees it.
pub(crate) struct Connection {
    pub(crate) session: Uuid,
    pub(crate) user_id: UserId,
    pub(crate) device_id: DeviceId,
    pub(crate) outbound: OutboundQueue<Outbound>,
    /// Bytes of events in `outbound`, not yet written.
    pub(crate) queued_bytes: AtomicUsize,
}

/// An event queued for a connection, holding its share of the server's outbound budget.
pub(crate) struct Outbound {
    pub(crate) frame: Utf8Bytes,
    /// A large group's frame: it may wait a moment to be written with the next ones.
    pub(crate) lingers: bool,
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

/// The hasher of the maps looked up for every delivered event: seeded foldhash, several
/// times cheaper than SipHash on user and chat ids.
type FastHash = foldhash::fast::RandomState;

#[derive(Default)]
struct Maps {
    by_user: HashMap<UserId, Vec<Arc<Connection>>, FastHash>,
    /// watched user -> sessions watching them.
    watchers: HashMap<UserId, HashMap<Uuid, Arc<Connection>>>,
    /// session -> users it watches, to undo on disconnect.
    watching: HashMap<Uuid, HashSet<UserId>>,
    /// watching user -> presence watches held by all their sessions.
    watches_of_user: HashMap<UserId, usize>,
    /// large group -> its members connected here.
    group_members: HashMap<ChatId, HashSet<UserId>, FastHash>,
    /// user connected here -> their large groups.
    groups_of_user: HashMap<UserId, HashSet<ChatId>>,
}

pub(crate) struct Registry {
    maps: RwLock<Maps>,
    bus: Arc<dyn Bus>,
    limits: RegistryLimits,
    outbound_memory: Arc<MemoryBudget>,
}

impl Registry {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        limits: RegistryLimits,
        outbound_memory: Arc<MemoryBudget>,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry {
            maps: RwLock::new(Maps::default()),
            bus: bus.clone(),
            limits,
            outbound_memory,
        });
        let weak = Arc::downgrade(&registry);
        bus.set_handler(Arc::new(move |topic, event| {
            if let Some(registry) = weak.upgrade() {
                registry.dispatch(topic, event);
            }
        }));
        let weak = Arc::downgrade(&registry);
        bus.set_gap_handler(Arc::new(move || {
            if let Some(registry) = weak.upgrade() {
                registry.resync_all();
            }
        }));
        registry
    }

    /// After the bus lost events (its subscription was cut, and is back): every
    /// connection is told to reconnect and sync, which recovers what it missed, and
    /// subscribes its large groups again (a lost `LargeGroup` event is how a gateway
    /// would miss a group's topic). Nothing else would tell a connected client to look.
    fn resync_all(&self) {
        let told = self.stop_all(Stop::Resync);
        metrics::counter!("chat_ws_resyncs_total").increment(told as u64);
        tracing::warn!(
            connections = told,
            "the bus may have lost events; every connection is told to reconnect and sync"
        );
    }

    /// Tells every registered connection to end for `stop` (at shutdown, or after a bus
    /// gap); returns how many were told.
    pub(crate) fn stop_all(&self, stop: Stop) -> usize {
        let maps = self.maps.read().expect("registry lock");
        let mut told = 0;
        for conn in maps.by_user.values().flatten() {
            conn.outbound.stop(stop);
            told += 1;
        }
        told
    }

    /// Whether `device_id` of `user_id` may connect: it is connected already (the new
    /// connection will replace the old), or the user has room for one more device.
    pub(crate) fn has_room_for(&self, user_id: &UserId, device_id: &DeviceId) -> bool {
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
    /// through its outbound queue) and returned.
    pub(crate) fn register(
        &self,
        connection: Arc<Connection>,
    ) -> Result<Option<Arc<Connection>>, TooManyDevices> {
        let replaced = {
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
            if conns.len() == 1 && replaced.is_none() {
                self.bus.subscribe(&Topic::User(connection.user_id.clone()));
            }
            replaced
        };
        if let Some(old) = &replaced {
            metrics::counter!("chat_ws_replaced_total").increment(1);
            old.outbound.stop(Stop::Replaced);
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
                    unsubscribe.push(Topic::User(connection.user_id.clone()));
                    for chat_id in maps
                        .groups_of_user
                        .remove(&connection.user_id)
                        .unwrap_or_default()
                    {
                        if leave_group(&mut maps, &chat_id, &connection.user_id) {
                            unsubscribe.push(Topic::Group(chat_id));
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
                        unsubscribe.push(Topic::Presence(watched));
                    }
                }
            }
            for topic in unsubscribe {
                self.bus.unsubscribe(&topic);
            }
        }
        metrics::gauge!("chat_ws_connections").decrement(1.0);
    }

    /// Records that `user_id` (if still connected here) is in these large groups, and
    /// subscribes the groups' topics this gateway did not have yet.
    pub(crate) fn join_groups(&self, user_id: &UserId, chat_ids: &[ChatId]) {
        let mut subscribe = Vec::new();
        {
            let mut maps = self.maps.write().expect("registry lock");
            if !maps.by_user.contains_key(user_id) {
                return;
            }
            for chat_id in chat_ids {
                let members = maps.group_members.entry(chat_id.clone()).or_default();
                if members.is_empty() {
                    subscribe.push(Topic::Group(chat_id.clone()));
                }
                members.insert(user_id.clone());
                maps.groups_of_user
                    .entry(user_id.clone())
                    .or_default()
                    .insert(chat_id.clone());
            }
            for topic in subscribe {
                self.bus.subscribe(&topic);
            }
        }
    }

    fn leave_group(&self, user_id: &UserId, chat_id: &ChatId) {
        let mut maps = self.maps.write().expect("registry lock");
        if let Some(groups) = maps.groups_of_user.get_mut(user_id) {
            groups.remove(chat_id);
        }
        if leave_group(&mut maps, chat_id, user_id) {
            self.bus.unsubscribe(&Topic::Group(chat_id.clone()));
        }
    }

    /// Makes `connection` receive presence changes of `users` (adding to what it watches),
    /// unless that takes it or its user past the watch limits.
    pub(crate) fn watch_presence(
        &self,
        connection: &Arc<Connection>,
        users: &HashSet<UserId>,
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
                    subscribe.push(Topic::Presence(user.clone()));
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
            for topic in subscribe {
                self.bus.subscribe(&topic);
            }
        }
        Ok(())
    }

    /// Ends every watch of `watched` by `watcher`'s connections here (visibility was lost).
    pub(crate) fn unwatch(&self, watcher: &UserId, watched: &UserId) {
        let mut unsubscribe = false;
        {
            let mut maps = self.maps.write().expect("registry lock");
            let sessions: Vec<Uuid> = maps
                .by_user
                .get(watcher)
                .into_iter()
                .flatten()
                .map(|c| c.session)
                .collect();
            let mut ended = 0;
            for session in sessions {
                if maps
                    .watching
                    .get_mut(&session)
                    .is_some_and(|w| w.remove(watched))
                {
                    ended += 1;
                    if let Some(watchers) = maps.watchers.get_mut(watched) {
                        watchers.remove(&session);
                        if watchers.is_empty() {
                            maps.watchers.remove(watched);
                            unsubscribe = true;
                        }
                    }
                }
            }
            release_watches(&mut maps, watcher, ended);
            if unsubscribe {
                self.bus.unsubscribe(&Topic::Presence(watched.clone()));
            }
        }
    }

    /// The bus handler: never blocks; a full queue marks its connection as too slow.
    fn dispatch(&self, topic: &Topic, event: &BusEvent) {
        let message = match (topic, event) {
            (Topic::User(user), BusEvent::LargeGroup { chat_id, member }) => {
                if *member {
                    self.join_groups(user, std::slice::from_ref(chat_id));
                } else {
                    self.leave_group(user, chat_id);
                }
                return;
            }
            (_, BusEvent::LargeGroup { .. }) => return,
            (Topic::User(watcher), BusEvent::PresenceRevoked { user }) => {
                self.unwatch(watcher, user);
                return;
            }
            (_, BusEvent::PresenceRevoked { .. }) => return,
            (_, BusEvent::Frame(message)) => message,
        };
        let Ok(frame) = Utf8Bytes::try_from(message.frame.clone()) else {
            tracing::error!(%topic, "bus frame is not UTF-8; dropped");
            return;
        };
        let maps = self.maps.read().expect("registry lock");
        let skipped = |conn: &Connection| Some(conn.session) == message.skip_session;
        match topic {
            Topic::User(user) => {
                if message.skip_user.as_ref() == Some(user) {
                    return;
                }
                for conn in maps.by_user.get(user).into_iter().flatten() {
                    if !skipped(conn) {
                        self.deliver(conn, &frame, false);
                    }
                }
            }
            Topic::Group(chat_id) => {
                let members = maps.group_members.get(chat_id).into_iter().flatten();
                for user in members.filter(|u| message.skip_user.as_ref() != Some(*u)) {
                    for conn in maps.by_user.get(user).into_iter().flatten() {
                        if !skipped(conn) {
                            self.deliver(conn, &frame, true);
                        }
                    }
                }
            }
            Topic::Presence(user) => {
                for conn in maps.watchers.get(user).into_iter().flat_map(|w| w.values()) {
                    self.deliver(conn, &frame, false);
                }
            }
        }
    }

    /// Queues `frame` for `conn`, or marks it too slow when its queue (or every queue
    /// together) is over its bytes. Never waits.
    fn deliver(&self, conn: &Connection, frame: &Utf8Bytes, lingers: bool) {
        if conn.outbound.is_stopped() {
            return;
        }
        let bytes = frame.as_str().len();
        match self.enqueue(conn, frame, lingers) {
            Ok(()) => FRAMES_OUT.increment(1),
            Err(refusal) => {
                conn.written(bytes);
                if let Refusal::OverLimit(limit) = refusal {
                    record_hit(limit);
                    tracing::info!(user_id = %conn.user_id, session = %conn.session, limit, "slow consumer disconnected");
                    metrics::counter!("chat_ws_slow_consumers_total").increment(1);
                    conn.outbound.stop(Stop::TooSlow);
                }
            }
        }
    }

    /// Counts the frame's bytes against the connection and the server, then queues it.
    fn enqueue(&self, conn: &Connection, frame: &Utf8Bytes, lingers: bool) -> Result<(), Refusal> {
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
            lingers,
            _memory: memory,
        };
        conn.outbound
            .try_push(item)
            .map_err(|refused| match refused {
                Refused::Full => Refusal::OverLimit("outbound_queue"),
                Refused::Closed => Refusal::Gone,
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
fn release_watches(maps: &mut Maps, user: &UserId, count: usize) {
    if let Some(n) = maps.watches_of_user.get_mut(user) {
        *n = n.saturating_sub(count);
        if *n == 0 {
            maps.watches_of_user.remove(user);
        }
    }
}

/// Removes a user from a group's local members; true when nobody here is left in it.
fn leave_group(maps: &mut Maps, chat_id: &ChatId, user_id: &UserId) -> bool {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use chat_bus::Handler;

    use super::*;

    /// A bus that keeps the topics it was asked for and is slow to unsubscribe: it says
    /// when an unsubscribe has begun, and takes long enough for another thread to register
    /// meanwhile.
    #[derive(Default)]
    struct SlowToUnsubscribe {
        topics: Mutex<HashSet<Topic>>,
        unsubscribing: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    }

    impl Bus for SlowToUnsubscribe {
        fn publish(&self, _: &Topic, _: BusEvent) {}
        fn subscribe(&self, topic: &Topic) {
            self.topics.lock().unwrap().insert(topic.clone());
        }
        fn unsubscribe(&self, topic: &Topic) {
            if let Some(begun) = self.unsubscribing.lock().unwrap().take() {
                let _ = begun.send(());
            }
            std::thread::sleep(Duration::from_millis(100));
            self.topics.lock().unwrap().remove(topic);
        }
        fn set_handler(&self, _: Handler) {}
    }

    fn connection(user: &str, device: &str) -> Arc<Connection> {
        Arc::new(Connection {
            session: Uuid::new_v4(),
            user_id: UserId::from(user),
            device_id: DeviceId::from(device),
            outbound: OutboundQueue::new(8),
            queued_bytes: AtomicUsize::new(0),
        })
    }

    /// A user's last connection leaving while their next one arrives: whichever order
    /// the bus calls take, the user stays subscribed while connected.
    #[test]
    fn a_connection_arriving_as_the_last_one_leaves_keeps_its_subscription() {
        let bus = Arc::new(SlowToUnsubscribe::default());
        let registry = Registry::new(
            bus.clone(),
            RegistryLimits {
                max_devices_per_user: 4,
                outbound_queue_bytes: 1 << 20,
                max_watches: 16,
                max_watches_per_user: 16,
            },
            MemoryBudget::new("test", 1 << 20),
        );
        let old = connection("alice", "phone");
        registry.register(old.clone()).unwrap();
        let (begun, unsubscribing) = std::sync::mpsc::channel();
        *bus.unsubscribing.lock().unwrap() = Some(begun);
        let leaving = {
            let registry = registry.clone();
            std::thread::spawn(move || registry.unregister(&old))
        };
        // The last connection has decided to unsubscribe; the next one registers now.
        unsubscribing.recv().unwrap();
        registry.register(connection("alice", "laptop")).unwrap();
        leaving.join().unwrap();
        assert!(bus
            .topics
            .lock()
            .unwrap()
            .contains(&Topic::User(UserId::from("alice"))));
    }
}
