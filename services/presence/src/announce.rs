//! Telling the watchers of a user about a presence transition.

use chat_bus::{Bus, BusEvent, BusMessage, Topic};
use chat_protocol::ids::UserId;
use chat_protocol::{PresenceEntry, ServerFrame};

pub(crate) fn announce(bus: &dyn Bus, user_id: &UserId, online: bool, ts: i64) {
    let frame = ServerFrame::Presence {
        re: None,
        users: vec![PresenceEntry {
            user_id: user_id.clone(),
            online,
            last_seen: Some(ts),
            error: None,
        }],
    };
    bus.publish(
        &Topic::Presence(user_id.clone()),
        BusEvent::Frame(BusMessage::to_all(frame.to_json())),
    );
    let to = if online { "online" } else { "offline" };
    metrics::counter!("chat_presence_transitions_total", "to" => to).increment(1);
}
