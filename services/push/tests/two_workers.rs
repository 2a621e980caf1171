//! Two push workers on one Redis queue, against a fake FCM that answers slower than the
//! queue's re-claim time and fails some sends: every device is notified exactly once per
//! job, no job is lost, and nothing is dead-lettered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_bus::LocalBus;
use chat_presence::LocalPresence;
use chat_protocol::PushPlatform;
use chat_push::providers::{FcmConfig, FcmCredentials, FcmProvider};
use chat_push::{
    PushJob, PushPolicy, PushProvider, PushQueue, PushWorker, RedisPushQueue, RedisQueueConfig,
};
use chat_store::{MessageStore, PushDevice, SqliteConfig, SqliteStore};
use chat_test_push_fakes::{FakeFcm, FcmReply};
use chat_test_redis::RedisServer;
use tokio_util::sync::CancellationToken;

const FCM_KEY: &str = include_str!("fixtures/fcm-test-key.pem");
const FCM_PUBLIC: &str = include_str!("fixtures/fcm-test-key.pub.pem");
const USERS: usize = 12;
const DEVICES_PER_USER: usize = 2;
/// Slower than the re-claim time: without a kept claim, the second worker would take
/// every job over while the first is still sending.
const PROVIDER_LATENCY: Duration = Duration::from_millis(700);
const RECLAIM_AFTER: Duration = Duration::from_millis(400);

async fn queue(redis: &RedisServer, consumer: &str) -> Arc<RedisPushQueue> {
    let mut config = RedisQueueConfig::new(&redis.url(), consumer);
    config.reclaim_after = RECLAIM_AFTER;
    Arc::new(RedisPushQueue::connect(config).await.unwrap())
}

async fn worker(
    queue: Arc<RedisPushQueue>,
    store: Arc<dyn MessageStore>,
    fcm: &FakeFcm,
) -> PushWorker {
    let provider = FcmProvider::new(FcmConfig {
        credentials: FcmCredentials::ServiceAccount(
            fcm.service_account_json("example-project", FCM_KEY),
        ),
        project_id: None,
        endpoint: fcm.url.clone(),
        timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let presence = Arc::new(LocalPresence::new(store.clone(), Arc::new(LocalBus::new())));
    let providers: Vec<Arc<dyn PushProvider>> = vec![Arc::new(provider)];
    let policy = PushPolicy {
        max_attempts: 10,
        user_rate_per_minute: 1000,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        send_timeout: Duration::from_secs(3),
        keep_claim_every: RECLAIM_AFTER / 4,
        concurrency: 4,
        ..PushPolicy::default()
    };
    PushWorker::new(queue, store, presence, providers, policy)
}

#[tokio::test]
async fn a_slow_failing_provider_and_a_second_worker_notify_each_device_once() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("c.db"))).unwrap());
    let fcm = FakeFcm::start(FCM_PUBLIC, "push@example-project.iam.gserviceaccount.com").await;
    fcm.set_latency(PROVIDER_LATENCY);
    // The first sends fail as a provider under strain does: 503s and 429s.
    fcm.script((0..8).map(|i| FcmReply {
        status: if i % 2 == 0 { 503 } else { 429 },
        error_status: if i % 2 == 0 {
            "UNAVAILABLE"
        } else {
            "RESOURCE_EXHAUSTED"
        },
        error_code: None,
        retry_after_secs: None,
    }));
    let mut expected = Vec::new();
    for user in 0..USERS {
        for device in 0..DEVICES_PER_USER {
            let token = format!("tok-{user}-{device}");
            store
                .upsert_push_device(&PushDevice {
                    user_id: format!("user{user}").as_str().into(),
                    device_id: format!("d{device}").as_str().into(),
                    platform: PushPlatform::Fcm,
                    token: token.clone(),
                })
                .await
                .unwrap();
            expected.push(token);
        }
    }

    let first = queue(&redis, "worker-a").await;
    let second = queue(&redis, "worker-b").await;
    for user in 0..USERS {
        first
            .enqueue(PushJob {
                user_id: format!("user{user}").as_str().into(),
                chat_id: "c".into(),
                seq: 1,
                sender_id: "alice".into(),
                body: "hi".into(),
                attempt: 0,
                devices: None,
            })
            .await
            .unwrap();
    }
    let shutdown = CancellationToken::new();
    let running = [
        tokio::spawn(
            worker(first.clone(), store.clone(), &fcm)
                .await
                .run(shutdown.clone()),
        ),
        tokio::spawn(
            worker(second.clone(), store.clone(), &fcm)
                .await
                .run(shutdown.clone()),
        ),
    ];

    let deadline = Instant::now() + Duration::from_secs(60);
    while fcm.delivered().len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time enough for a duplicate to show: more than a re-claim period and a send.
    tokio::time::sleep(RECLAIM_AFTER * 2 + PROVIDER_LATENCY).await;
    shutdown.cancel();
    for handle in running {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("workers finish their jobs and stop")
            .unwrap();
    }

    let mut notified: HashMap<String, usize> = HashMap::new();
    for request in fcm.delivered() {
        let token = request.message["token"].as_str().unwrap().to_owned();
        *notified.entry(token).or_default() += 1;
    }
    for token in &expected {
        assert_eq!(
            notified.get(token).copied().unwrap_or(0),
            1,
            "{token} notified exactly once: {notified:?}"
        );
    }
    assert_eq!(notified.len(), expected.len());
    assert!(
        fcm.accepted().len() > expected.len(),
        "some sends failed and were retried"
    );
    assert_eq!(first.pending_len().await.unwrap(), 0, "every job acked");
    assert_eq!(
        first.delayed_len().await.unwrap(),
        0,
        "no retry left waiting"
    );
    assert!(first.dead_letters().await.unwrap().is_empty());
}
