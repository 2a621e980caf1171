//! The Redis bus against a real redis-server: delivery, order, unsubscribe, and
//! resubscription after Redis is killed and restarted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chat_bus::{Bus, BusMessage, RedisBus};
use chat_test_redis::RedisServer;
use uuid::Uuid;

type Inbox = Arc<Mutex<Vec<(String, BusMessage)>>>;

fn listen(bus: &RedisBus) -> Inbox {
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    bus.set_handler(Arc::new(move |topic, message| {
        sink.lock()
            .unwrap()
            .push((topic.to_owned(), message.clone()));
    }));
    inbox
}

/// Publishes `frame` every 50 ms until `inbox` holds it, or panics after 10 s.
async fn publish_until_seen(publisher: &RedisBus, inbox: &Inbox, topic: &str, frame: &'static str) {
    for _ in 0..200 {
        publisher.publish(topic, BusMessage::to_all(frame));
        tokio::time::sleep(Duration::from_millis(50)).await;
        if inbox.lock().unwrap().iter().any(|(_, m)| m.frame == frame) {
            return;
        }
    }
    panic!("{frame} never arrived on {topic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_in_order_and_resubscribes_after_a_redis_restart() {
    let mut redis = RedisServer::start().await;
    let subscriber = RedisBus::connect(&redis.url()).await.unwrap();
    let publisher = RedisBus::connect(&redis.url()).await.unwrap();
    let inbox = listen(&subscriber);
    subscriber.subscribe("user:bob");
    publish_until_seen(&publisher, &inbox, "user:bob", "warm-up").await;
    inbox.lock().unwrap().clear();

    let session = Uuid::new_v4();
    for i in 0..100 {
        let message = BusMessage {
            frame: Bytes::from(format!("frame {i}")),
            skip_session: Some(session),
            skip_user: Some("alice".into()),
        };
        publisher.publish("user:bob", message);
    }
    publisher.publish("user:carol", BusMessage::to_all("not subscribed"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let got = inbox.lock().unwrap();
        let frames: Vec<Bytes> = got.iter().map(|(_, m)| m.frame.clone()).collect();
        let expected: Vec<Bytes> = (0..100)
            .map(|i| Bytes::from(format!("frame {i}")))
            .collect();
        assert_eq!(
            frames, expected,
            "every frame, in publish order, nothing from other topics"
        );
        assert!(got.iter().all(|(t, m)| t == "user:bob"
            && m.skip_session == Some(session)
            && m.skip_user.as_deref() == Some("alice")));
    }

    redis.restart().await;
    publish_until_seen(&publisher, &inbox, "user:bob", "after restart").await;

    subscriber.unsubscribe("user:bob");
    tokio::time::sleep(Duration::from_millis(200)).await;
    inbox.lock().unwrap().clear();
    publisher.publish("user:bob", BusMessage::to_all("after unsubscribe"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.lock().unwrap().is_empty());
}
