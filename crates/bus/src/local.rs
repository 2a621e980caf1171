//! The in-process bus `chatd` uses: publishing calls the handler directly, in the caller's
//! thread, so events keep the order they were published in.

use std::collections::HashSet;
use std::sync::RwLock;

use crate::{Bus, BusMessage, Handler};

#[derive(Default)]
pub struct LocalBus {
    topics: RwLock<HashSet<String>>,
    handler: RwLock<Option<Handler>>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for LocalBus {
    fn publish(&self, topic: &str, message: BusMessage) {
        if !self.topics.read().expect("bus lock").contains(topic) {
            return;
        }
        let handler = self.handler.read().expect("bus lock").clone();
        if let Some(handler) = handler {
            handler(topic, &message);
        }
    }

    fn subscribe(&self, topic: &str) {
        self.topics
            .write()
            .expect("bus lock")
            .insert(topic.to_owned());
    }

    fn unsubscribe(&self, topic: &str) {
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

    #[test]
    fn delivers_only_subscribed_topics_in_order() {
        let bus = LocalBus::new();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        bus.set_handler(Arc::new(move |topic, msg| {
            sink.lock()
                .unwrap()
                .push((topic.to_owned(), msg.frame.clone()));
        }));
        bus.publish("user:a", BusMessage::to_all("0"));
        bus.subscribe("user:a");
        bus.publish("user:a", BusMessage::to_all("1"));
        bus.publish("user:b", BusMessage::to_all("x"));
        bus.publish("user:a", BusMessage::to_all("2"));
        bus.unsubscribe("user:a");
        bus.publish("user:a", BusMessage::to_all("3"));
        let got = got.lock().unwrap();
        let frames: Vec<_> = got.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(
            frames,
            vec![bytes::Bytes::from("1"), bytes::Bytes::from("2")]
        );
    }
}
