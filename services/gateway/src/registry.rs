//! The gateway's connection registry: which sessions of which users are connected here,
//! which large groups those users are in, who watches whose presence, and the bus handler
//! that hands each event to the right connections' outbound queues without ever blocking.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use chat_bus::{group_topic, presence_topic, user_topic, Bus, BusMessage};
use chat_protocol::{ChatEvent, ChatKind, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One connected session as the registry sees it.
pub(crate) struct Connection {
    pub(crate) session: Uuid,
    pub(crate) user_id: String,
    pub(crate) device_id: String,
    pub(crate) outbound: mpsc::Sender<Utf8Bytes>,
    /// Cancelled when the connection must close because it cannot keep up.
    pub(crate) kick: CancellationToken,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyDevices;

#[derive(Default)]
struct Maps {
    by_user: HashMap<String, Vec<Arc<Connection>>>,
    /// watched user -> sessions watching them.
    watchers: HashMap<String, HashMap<Uuid, Arc<Connection>>>,
    /// session -> users it watches, to undo on disconnect.
    watching: HashMap<Uuid, HashSet<String>>,
    /// large group -> its members connected here.
    group_members: HashMap<String, HashSet<String>>,
    /// user connected here -> their large groups.
    groups_of_user: HashMap<String, HashSet<String>>,
}

pub(crate) struct Registry {
    maps: RwLock<Maps>,
    bus: Arc<dyn Bus>,
    max_devices_per_user: usize,
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
        max_devices_per_user: usize,
        large_group_members: usize,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry {
            maps: RwLock::new(Maps::default()),
            bus: bus.clone(),
            max_devices_per_user,
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

    /// Whether one more device of `user_id` (other than `device_id`) may connect.
    pub(crate) fn has_room_for(&self, user_id: &str, device_id: &str) -> bool {
        let maps = self.maps.read().expect("registry lock");
        let devices: HashSet<&str> = maps
            .by_user
            .get(user_id)
            .map(|conns| conns.iter().map(|c| c.device_id.as_str()).collect())
            .unwrap_or_default();
        devices.contains(device_id) || devices.len() < self.max_devices_per_user
    }

    pub(crate) fn register(&self, connection: Arc<Connection>) -> Result<(), TooManyDevices> {
        let first = {
            let mut maps = self.maps.write().expect("registry lock");
            let conns = maps.by_user.entry(connection.user_id.clone()).or_default();
            let devices: HashSet<&str> = conns.iter().map(|c| c.device_id.as_str()).collect();
            if !devices.contains(connection.device_id.as_str())
                && devices.len() >= self.max_devices_per_user
            {
                return Err(TooManyDevices);
            }
            conns.push(connection.clone());
            conns.len() == 1
        };
        if first {
            self.bus.subscribe(&user_topic(&connection.user_id));
        }
        metrics::gauge!("chat_ws_connections").increment(1.0);
        Ok(())
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
            for watched in maps
                .watching
                .remove(&connection.session)
                .unwrap_or_default()
            {
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

    /// Makes `connection` receive presence changes of `users`.
    pub(crate) fn watch_presence(&self, connection: &Arc<Connection>, users: &HashSet<String>) {
        let mut subscribe = Vec::new();
        {
            let mut maps = self.maps.write().expect("registry lock");
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
        }
        for topic in subscribe {
            self.bus.subscribe(&topic);
        }
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
                    deliver(conn, &frame);
                }
            }
        } else if let Some(chat_id) = topic.strip_prefix("group:") {
            let members = maps.group_members.get(chat_id).into_iter().flatten();
            for user in members.filter(|u| message.skip_user.as_deref() != Some(u.as_str())) {
                for conn in maps.by_user.get(user).into_iter().flatten() {
                    if Some(conn.session) != message.skip_session {
                        deliver(conn, &frame);
                    }
                }
            }
        } else if let Some(user) = topic.strip_prefix("presence:") {
            for conn in maps.watchers.get(user).into_iter().flat_map(|w| w.values()) {
                deliver(conn, &frame);
            }
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

fn deliver(conn: &Connection, frame: &Utf8Bytes) {
    match conn.outbound.try_send(frame.clone()) {
        Ok(()) => metrics::counter!("chat_ws_frames_out_total").increment(1),
        Err(mpsc::error::TrySendError::Full(_)) => {
            if !conn.kick.is_cancelled() {
                tracing::info!(user_id = %conn.user_id, session = %conn.session, "slow consumer disconnected");
                metrics::counter!("chat_ws_slow_consumers_total").increment(1);
                conn.kick.cancel();
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}
