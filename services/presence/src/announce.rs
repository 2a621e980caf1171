//! Publishing a user's presence transition: persist last seen, then tell the watchers.

use chat_bus::{presence_topic, Bus, BusMessage};
use chat_protocol::{PresenceEntry, ServerFrame};
use chat_store::MessageStore;

pub(crate) async fn announce(
    store: &dyn MessageStore,
    bus: &dyn Bus,
    user_id: &str,
    online: bool,
    ts: i64,
) {
    if let Err(e) = store.set_last_seen(user_id, ts).await {
        tracing::warn!(error = %e, user_id, "could not persist last seen");
    }
    let frame = ServerFrame::Presence {
        re: None,
        users: vec![PresenceEntry {
            user_id: user_id.to_owned(),
            online,
            last_seen: Some(ts),
            error: None,
        }],
    };
    bus.publish(
        &presence_topic(user_id),
        BusMessage::to_all(frame.to_json()),
    );
    let to = if online { "online" } else { "offline" };
    metrics::counter!("chat_presence_transitions_total", "to" => to).increment(1);
}
