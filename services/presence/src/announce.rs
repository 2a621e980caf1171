//! Telling the watchers of a user about a presence transition (with its time as their
//! last seen, unless the user hides it).

use chat_bus::{Bus, BusEvent, BusMessage, Topic};
use chat_protocol::ids::UserId;
use chat_protocol::{PresenceEntry, ServerFrame};

use crate::policy::LastSeenPolicy;

pub(crate) async fn announce(
    bus: &dyn Bus,
    policy: &dyn LastSeenPolicy,
    user_id: &UserId,
    online: bool,
    ts: i64,
) {
    let last_seen = policy.shows_last_seen(user_id).await.then_some(ts);
    let frame = ServerFrame::Presence {
        re: None,
        users: vec![PresenceEntry {
            user_id: user_id.clone(),
            online,
            last_seen,
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
