//! Presence over a real Redis: per-user transitions across gateways, a dead gateway's
//! users swept offline, sessions registered again after Redis loses its data, and
//! last-seen times recorded in the store by the one recorder (gateways hold no store).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_bus::{Bus, BusEvent, LocalBus, Topic};
use chat_presence::{
    LastSeenRecorder, PresenceSweeper, PresenceView, RedisPresenceView, RedisSessions,
    SessionTracker, ShowAll,
};
use chat_protocol::ids::UserId;
use chat_store::{MessageStore, SqliteConfig, SqliteStore};
use chat_test_redis::RedisServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Fixture {
    redis: RedisServer,
    bus: Arc<LocalBus>,
    /// (user, online) of every presence event published.
    events: Arc<Mutex<Vec<(String, bool)>>>,
}

fn bob() -> UserId {
    UserId::from("bob")
}

async fn fixture() -> Fixture {
    let bus = Arc::new(LocalBus::new());
    let events: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let sink = events.clone();
    bus.set_handler(Arc::new(move |_, event| {
        let BusEvent::Frame(message) = event else {
            return;
        };
        let frame: serde_json::Value = serde_json::from_slice(&message.frame).unwrap();
        let user = &frame["users"][0];
        sink.lock().unwrap().push((
            user["user_id"].as_str().unwrap().to_owned(),
            user["online"].as_bool().unwrap(),
        ));
    }));
    bus.subscribe(&Topic::Presence(bob()));
    Fixture {
        redis: RedisServer::start().await,
        bus,
        events,
    }
}

impl Fixture {
    async fn gateway(&self, id: &str, ttl: Duration) -> Arc<RedisSessions> {
        RedisSessions::connect(
            &self.redis.url(),
            id,
            ttl,
            self.bus.clone(),
            Arc::new(ShowAll),
        )
        .await
        .unwrap()
    }

    async fn view(&self) -> RedisPresenceView {
        RedisPresenceView::connect(&self.redis.url()).await.unwrap()
    }

    fn events(&self) -> Vec<(String, bool)> {
        self.events.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn online_from_first_session_to_last_across_gateways() {
    let f = fixture().await;
    let (a, b) = (
        f.gateway("gw-a", Duration::from_secs(10)).await,
        f.gateway("gw-b", Duration::from_secs(10)).await,
    );
    let view = f.view().await;
    let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
    a.connected(&bob(), s1).await;
    b.connected(&bob(), s2).await;
    assert!(view.is_online(&bob()).await);
    a.disconnected(&bob(), s1).await;
    assert!(view.is_online(&bob()).await, "still online on gw-b");
    b.disconnected(&bob(), s2).await;
    assert!(!view.is_online(&bob()).await);
    assert_eq!(
        f.events(),
        vec![("bob".into(), true), ("bob".into(), false)]
    );
    assert_eq!(
        view.online(&[bob(), "nobody".into()]).await,
        vec![false, false]
    );
}

#[tokio::test]
async fn last_seen_times_reach_the_store_through_the_recorder() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("c.db"))).unwrap());
    let gateway = f.gateway("gw-a", Duration::from_secs(10)).await;
    let session = Uuid::new_v4();
    gateway.connected(&bob(), session).await;
    gateway.disconnected(&bob(), session).await;
    let recorder = LastSeenRecorder::connect(&f.redis.url(), "r1", store.clone())
        .await
        .unwrap();
    let recorded = recorder
        .record_once(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(recorded, 2, "the online and the offline transition");
    let seen = store.last_seen(&[bob()]).await.unwrap();
    assert!(seen.get(&bob()).is_some_and(|ts| *ts > 0));
    // Recorded entries are gone from the stream.
    assert_eq!(
        recorder
            .record_once(Duration::from_millis(100))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_dead_gateways_users_are_swept_offline() {
    let f = fixture().await;
    let ttl = Duration::from_millis(600);
    let dying = f.gateway("gw-dying", ttl).await;
    let stop = CancellationToken::new();
    dying.spawn_heartbeat(stop.clone());
    dying.connected(&bob(), Uuid::new_v4()).await;
    let sweeper = PresenceSweeper::connect(&f.redis.url(), f.bus.clone(), Arc::new(ShowAll))
        .await
        .unwrap();
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(
        sweeper.sweep().await.unwrap(),
        0,
        "a heartbeating gateway is not swept"
    );
    // The gateway dies without disconnecting anyone.
    stop.cancel();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(sweeper.sweep().await.unwrap(), 1);
    assert!(!f.view().await.is_online(&bob()).await);
    assert_eq!(f.events().last(), Some(&("bob".to_string(), false)));
}

#[tokio::test]
async fn sessions_come_back_after_redis_loses_its_data() {
    let mut f = fixture().await;
    let ttl = Duration::from_millis(600);
    let gateway = f.gateway("gw-a", ttl).await;
    gateway.spawn_heartbeat(CancellationToken::new());
    gateway.connected(&bob(), Uuid::new_v4()).await;
    let view = f.view().await;
    assert!(view.is_online(&bob()).await);
    f.redis.restart().await;
    let mut online = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if view.is_online(&bob()).await {
            online = true;
            break;
        }
    }
    assert!(online, "the heartbeat registered bob's session again");
}
