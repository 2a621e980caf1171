//! The Redis bus against a real redis-server: delivery, order, unsubscribe, and
//! resubscription after Redis is killed and restarted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chat_bus::{Bus, BusEvent, BusMessage, RedisBus, Topic};
use chat_test_redis::RedisServer;
use uuid::Uuid;

type Inbox = Arc<Mutex<Vec<(Topic, BusEvent)>>>;

fn listen(bus: &RedisBus) -> Inbox {
    let inbox: Inbox = Arc::default();
    let sink = inbox.clone();
    bus.set_handler(Arc::new(move |topic, event| {
        sink.lock().unwrap().push((topic.clone(), event.clone()));
    }));
    inbox
}

fn frame(text: &'static str) -> BusEvent {
    BusEvent::Frame(BusMessage::to_all(text))
}

/// Publishes `text` every 50 ms until `inbox` holds it, or panics after 10 s.
async fn publish_until_seen(
    publisher: &RedisBus,
    inbox: &Inbox,
    topic: &Topic,
    text: &'static str,
) {
    for _ in 0..200 {
        publisher.publish(topic, frame(text));
        tokio::time::sleep(Duration::from_millis(50)).await;
        if inbox.lock().unwrap().iter().any(|(_, e)| *e == frame(text)) {
            return;
        }
    }
    panic!("{text} never arrived on {topic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_in_order_and_resubscribes_after_a_redis_restart() {
    let mut redis = RedisServer::start().await;
    let subscriber = RedisBus::connect(&redis.url()).await.unwrap();
    let publisher = RedisBus::connect(&redis.url()).await.unwrap();
    let inbox = listen(&subscriber);
    let gaps = Arc::new(AtomicUsize::new(0));
    let counted = gaps.clone();
    subscriber.set_gap_handler(Arc::new(move || {
        counted.fetch_add(1, Ordering::Relaxed);
    }));
    let bob = Topic::User("bob".into());
    subscriber.subscribe(&bob);
    publish_until_seen(&publisher, &inbox, &bob, "warm-up").await;
    inbox.lock().unwrap().clear();

    let session = Uuid::new_v4();
    for i in 0..100 {
        let message = BusMessage {
            frame: Bytes::from(format!("frame {i}")),
            skip_session: Some(session),
            skip_user: Some("alice".into()),
        };
        publisher.publish(&bob, BusEvent::Frame(message));
    }
    publisher.publish(
        &bob,
        BusEvent::LargeGroup {
            chat_id: "big".into(),
            member: true,
        },
    );
    publisher.publish(&Topic::User("carol".into()), frame("not subscribed"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let got = inbox.lock().unwrap();
        let mut expected: Vec<BusEvent> = (0..100)
            .map(|i| {
                BusEvent::Frame(BusMessage {
                    frame: Bytes::from(format!("frame {i}")),
                    skip_session: Some(session),
                    skip_user: Some("alice".into()),
                })
            })
            .collect();
        expected.push(BusEvent::LargeGroup {
            chat_id: "big".into(),
            member: true,
        });
        let events: Vec<BusEvent> = got.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(
            events, expected,
            "every event, in publish order, nothing from other topics"
        );
        assert!(got.iter().all(|(t, _)| *t == bob));
    }

    assert_eq!(gaps.load(Ordering::Relaxed), 0, "no gap before the restart");
    redis.restart().await;
    publish_until_seen(&publisher, &inbox, &bob, "after restart").await;
    assert!(
        gaps.load(Ordering::Relaxed) >= 1,
        "the gap is reported once subscribed again"
    );

    subscriber.unsubscribe(&bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    inbox.lock().unwrap().clear();
    publisher.publish(&bob, frame("after unsubscribe"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.lock().unwrap().is_empty());
}
