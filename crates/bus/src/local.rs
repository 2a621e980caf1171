//! The in-process bus `chatd` uses: publishing calls the handler directly, in the caller's
//! thread, so events keep the order they were published in.

use std::collections::HashSet;
use std::sync::RwLock;

use crate::{Bus, BusEvent, Handler, Topic};

#[derive(Default)]
pub struct LocalBus {
    /// Looked up on every publish: seeded foldhash, several times cheaper than SipHash on
    /// topic names, and seeded per process so names cannot be chosen to collide.
    topics: RwLock<HashSet<Topic, foldhash::fast::RandomState>>,
    handler: RwLock<Option<Handler>>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for LocalBus {
    fn publish(&self, topic: &Topic, event: BusEvent) {
        if !self.topics.read().expect("bus lock").contains(topic) {
            return;
        }
        let handler = self.handler.read().expect("bus lock").clone();
        if let Some(handler) = handler {
            handler(topic, &event);
        }
    }

    fn subscribe(&self, topic: &Topic) {
        self.topics.write().expect("bus lock").insert(topic.clone());
    }

    fn unsubscribe(&self, topic: &Topic) {
        self.topics.write().expect("bus lock").remove(topic);
    }

    fn set_handler(&self, handler: Handler) {
        *self.handler.write().expect("bus lock") = Some(handler);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::BusMessage;

    #[test]
    fn delivers_only_subscribed_topics_in_order() {
        let bus = LocalBus::new();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        bus.set_handler(Arc::new(move |topic, event| {
            sink.lock().unwrap().push((topic.clone(), event.clone()));
        }));
        let (a, b) = (Topic::User("a".into()), Topic::User("b".into()));
        let frame = |s: &'static str| BusEvent::Frame(BusMessage::to_all(s));
        bus.publish(&a, frame("0"));
        bus.subscribe(&a);
        bus.publish(&a, frame("1"));
        bus.publish(&b, frame("x"));
        bus.publish(&a, frame("2"));
        bus.unsubscribe(&a);
        bus.publish(&a, frame("3"));
        let got = got.lock().unwrap();
        let events: Vec<_> = got.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(events, vec![frame("1"), frame("2")]);
    }
}
