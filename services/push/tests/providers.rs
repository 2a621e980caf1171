//! APNs and FCM providers, through the worker, against local fake servers that check each
//! request as Apple and Google would: provider tokens and OAuth assertions verified with
//! the test keys' public halves, paths, headers, bodies; and each error class answered so
//! the worker's reaction is tested — retry, drop the token, dead-letter.

use chat_protocol::ids::{ChatId, DeviceId, UserId};
use std::sync::Arc;
use std::time::Duration;

use chat_bus::LocalBus;
use chat_presence::{LocalPresence, SessionTracker};
use chat_protocol::PushPlatform;
use chat_push::providers::{ApnsConfig, ApnsProvider, FcmConfig, FcmProvider, ServiceAccount};
use chat_push::{
    LocalPushQueue, Outcome, PushJob, PushPolicy, PushProvider, PushQueue, PushWorker,
};
use chat_store::{MessageStore, PushDevice, SqliteConfig, SqliteStore};
use chat_test_push_fakes::{ApnsReply, FakeApns, FakeFcm, FcmReply};
use uuid::Uuid;

const APNS_KEY: &str = include_str!("fixtures/apns-test-key.p8");
const APNS_PUBLIC: &str = include_str!("fixtures/apns-test-key.pub.pem");
const FCM_KEY: &str = include_str!("fixtures/fcm-test-key.pem");
const FCM_PUBLIC: &str = include_str!("fixtures/fcm-test-key.pub.pem");
const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const TOPIC: &str = "com.example.chat";
const WAIT: Duration = Duration::from_millis(200);

struct Fixture {
    store: Arc<dyn MessageStore>,
    presence: Arc<LocalPresence>,
    queue: Arc<LocalPushQueue>,
    apns: FakeApns,
    fcm: FakeFcm,
    worker: PushWorker,
    _dir: tempfile::TempDir,
}

fn policy() -> PushPolicy {
    PushPolicy {
        max_attempts: 3,
        preview: false,
        user_rate_per_minute: 1000,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
    }
}

async fn fixture(policy: PushPolicy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("c.db"))).unwrap());
    let presence = Arc::new(LocalPresence::new(store.clone(), Arc::new(LocalBus::new())));
    let queue = Arc::new(LocalPushQueue::new(64));
    let apns = FakeApns::start(APNS_PUBLIC, TEAM, KEY_ID, TOPIC).await;
    let fcm = FakeFcm::start(FCM_PUBLIC, "push@example-project.iam.gserviceaccount.com").await;
    let apns_provider = ApnsProvider::new(ApnsConfig {
        key_pem: APNS_KEY.into(),
        key_id: KEY_ID.into(),
        team_id: TEAM.into(),
        topic: TOPIC.into(),
        endpoint: apns.url.clone(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let account: ServiceAccount =
        serde_json::from_str(&fcm.service_account_json("example-project", FCM_KEY)).unwrap();
    let fcm_provider = FcmProvider::new(FcmConfig {
        account,
        endpoint: fcm.url.clone(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let providers: Vec<Arc<dyn PushProvider>> =
        vec![Arc::new(apns_provider), Arc::new(fcm_provider)];
    let worker = PushWorker::new(
        queue.clone(),
        store.clone(),
        presence.clone(),
        providers,
        policy,
    );
    Fixture {
        store,
        presence,
        queue,
        apns,
        fcm,
        worker,
        _dir: dir,
    }
}

impl Fixture {
    async fn device(&self, id: &str, platform: PushPlatform, token: &str) {
        let device = PushDevice {
            user_id: "bob".into(),
            device_id: id.into(),
            platform,
            token: token.into(),
        };
        self.store.upsert_push_device(&device).await.unwrap();
    }

    async fn devices(&self) -> Vec<DeviceId> {
        self.store
            .push_devices(&UserId::from("bob"))
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.device_id)
            .collect()
    }

    async fn push(&self, seq: u64) -> Outcome {
        let job = PushJob {
            user_id: "bob".into(),
            chat_id: "chat-1".into(),
            seq,
            sender_id: "alice".into(),
            body: "secret text".into(),
            attempt: 0,
            devices: None,
        };
        self.queue.enqueue(job).await.unwrap();
        self.worker.try_execute_task(WAIT).await
    }

    fn assert_all_requests_valid(&self) {
        assert!(
            self.apns.rejected().is_empty(),
            "APNs refused: {:?}",
            self.apns.rejected()
        );
        assert!(
            self.fcm.rejected().is_empty(),
            "FCM refused: {:?}",
            self.fcm.rejected()
        );
    }
}

fn delivered(sent: usize) -> Outcome {
    Outcome::Processed {
        sent,
        unconfigured: 0,
        removed: 0,
        dead_lettered: 0,
        retries: 0,
    }
}

#[tokio::test]
async fn apns_requests_are_what_apple_accepts() {
    let f = fixture(policy()).await;
    f.device("iphone", PushPlatform::Apns, "a1b2c3").await;
    assert_eq!(f.push(1).await, delivered(1));
    assert_eq!(f.push(2).await, delivered(1));
    f.assert_all_requests_valid();
    let sent = f.apns.accepted();
    assert_eq!(sent.len(), 2);
    let first = &sent[0];
    assert_eq!(first.device_token, "a1b2c3");
    assert_eq!(first.topic, TOPIC);
    assert_eq!(first.push_type, "alert");
    assert_eq!(
        first.collapse_id.as_deref(),
        Some("chat-1"),
        "one notification per chat burst"
    );
    assert_eq!(first.priority.as_deref(), Some("10"));
    assert_eq!(
        first.payload["aps"]["alert"], "New message",
        "no preview by default"
    );
    assert_eq!(first.payload["chat_id"], "chat-1");
    assert!(!first.payload.to_string().contains("secret text"));
}

#[tokio::test]
async fn fcm_requests_carry_an_oauth_token_fetched_once() {
    let f = fixture(PushPolicy {
        preview: true,
        ..policy()
    })
    .await;
    f.device("pixel", PushPlatform::Fcm, "fcm-token-1").await;
    assert_eq!(f.push(1).await, delivered(1));
    assert_eq!(f.push(2).await, delivered(1));
    f.assert_all_requests_valid();
    assert_eq!(
        f.fcm.tokens_issued(),
        1,
        "the access token is cached until it expires"
    );
    let sent = f.fcm.accepted();
    assert_eq!(sent.len(), 2);
    let message = &sent[0].message;
    assert_eq!(sent[0].project, "example-project");
    assert_eq!(message["token"], "fcm-token-1");
    assert_eq!(
        message["notification"]["title"], "alice",
        "preview shows the sender"
    );
    assert_eq!(message["notification"]["body"], "secret text");
    assert_eq!(message["android"]["collapse_key"], "chat-1");
    assert_eq!(message["apns"]["headers"]["apns-collapse-id"], "chat-1");
    assert_eq!(message["data"]["seq"], "1");
}

#[tokio::test]
async fn the_badge_is_the_users_total_unread() {
    let f = fixture(policy()).await;
    let chat = |id: &str| chat_protocol::Chat {
        chat_id: id.into(),
        kind: chat_protocol::ChatKind::Group,
        title: None,
        members: vec![
            chat_protocol::Member {
                user_id: "alice".into(),
                role: chat_protocol::Role::Admin,
            },
            chat_protocol::Member {
                user_id: "bob".into(),
                role: chat_protocol::Role::Member,
            },
        ],
        created_at: 0,
        head_seq: 0,
    };
    let message = |chat: &str, seq: u64| chat_protocol::Message {
        chat_id: chat.into(),
        seq,
        msg_id: format!("{chat}-{seq}"),
        sender_id: "alice".into(),
        client_msg_id: format!("{chat}-{seq}"),
        body: "x".into(),
        ts: 1,
    };
    f.store.create_chat(&chat("c1")).await.unwrap();
    f.store.create_chat(&chat("c2")).await.unwrap();
    f.store
        .append(vec![
            message("c1", 1),
            message("c1", 2),
            message("c1", 3),
            message("c2", 1),
        ])
        .await
        .unwrap();
    f.store
        .advance_read(&ChatId::from("c1"), &UserId::from("bob"), 1)
        .await
        .unwrap();
    f.device("iphone", PushPlatform::Apns, "tok").await;
    assert_eq!(f.push(3).await, delivered(1));
    assert_eq!(
        f.apns.accepted()[0].payload["aps"]["badge"],
        3,
        "2 unread in c1 + 1 in c2"
    );
}

#[tokio::test]
async fn dead_tokens_are_removed() {
    let f = fixture(policy()).await;
    f.device("gone", PushPlatform::Apns, "t-gone").await;
    f.device("bad", PushPlatform::Apns, "t-bad").await;
    f.device("unreg", PushPlatform::Fcm, "f-unreg").await;
    f.device("invalid", PushPlatform::Fcm, "f-invalid").await;
    f.device("fine", PushPlatform::Fcm, "f-fine").await;
    // Devices are tried in id order: bad, fine, gone, invalid, unreg.
    f.apns.script([
        ApnsReply {
            status: 400,
            reason: Some("BadDeviceToken"),
            retry_after_secs: None,
        },
        ApnsReply {
            status: 410,
            reason: Some("Unregistered"),
            retry_after_secs: None,
        },
    ]);
    f.fcm.script([
        FcmReply {
            status: 200,
            error_status: "",
            error_code: None,
            retry_after_secs: None,
        },
        FcmReply {
            status: 400,
            error_status: "INVALID_ARGUMENT",
            error_code: Some("INVALID_ARGUMENT"),
            retry_after_secs: None,
        },
        FcmReply {
            status: 404,
            error_status: "NOT_FOUND",
            error_code: Some("UNREGISTERED"),
            retry_after_secs: None,
        },
    ]);
    let outcome = f.push(1).await;
    assert_eq!(
        outcome,
        Outcome::Processed {
            sent: 1,
            unconfigured: 0,
            removed: 4,
            dead_lettered: 0,
            retries: 0
        }
    );
    assert_eq!(f.devices().await, vec!["fine".to_string()]);
    f.assert_all_requests_valid();
}

#[tokio::test]
async fn transient_failures_are_retried_and_persistent_ones_dead_lettered() {
    let f = fixture(policy()).await;
    f.device("iphone", PushPlatform::Apns, "tok").await;
    // 503, then 429 with Retry-After, then success.
    f.apns.script([
        ApnsReply {
            status: 503,
            reason: Some("ServiceUnavailable"),
            retry_after_secs: None,
        },
        ApnsReply {
            status: 429,
            reason: Some("TooManyRequests"),
            retry_after_secs: Some(1),
        },
    ]);
    let started = std::time::Instant::now();
    assert_eq!(
        f.push(1).await,
        Outcome::Processed {
            sent: 1,
            unconfigured: 0,
            removed: 0,
            dead_lettered: 0,
            retries: 2
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(f.apns.accepted().len(), 3);

    // Failing every attempt: dead-lettered, token kept.
    f.apns.script((0..3).map(|_| ApnsReply {
        status: 500,
        reason: Some("InternalServerError"),
        retry_after_secs: None,
    }));
    assert_eq!(
        f.push(2).await,
        Outcome::Processed {
            sent: 0,
            unconfigured: 0,
            removed: 0,
            dead_lettered: 1,
            retries: 2
        }
    );
    assert_eq!(f.devices().await, vec!["iphone".to_string()]);
    f.assert_all_requests_valid();
}

#[tokio::test]
async fn expired_credentials_are_renewed_once() {
    let f = fixture(policy()).await;
    f.device("iphone", PushPlatform::Apns, "tok").await;
    f.device("pixel", PushPlatform::Fcm, "ftok").await;
    f.apns.script([ApnsReply {
        status: 403,
        reason: Some("ExpiredProviderToken"),
        retry_after_secs: None,
    }]);
    f.fcm.script([FcmReply {
        status: 401,
        error_status: "UNAUTHENTICATED",
        error_code: None,
        retry_after_secs: None,
    }]);
    assert_eq!(f.push(1).await, delivered(2));
    assert_eq!(f.fcm.tokens_issued(), 2, "a new access token after the 401");
    assert_eq!(f.apns.accepted().len(), 2);
}

#[tokio::test]
async fn no_push_when_the_user_is_online_or_over_the_rate() {
    let f = fixture(PushPolicy {
        user_rate_per_minute: 1,
        ..policy()
    })
    .await;
    f.device("iphone", PushPlatform::Apns, "tok").await;
    assert_eq!(f.push(1).await, delivered(1));
    assert_eq!(f.push(2).await, Outcome::RateLimited);
    f.presence
        .connected(&UserId::from("bob"), Uuid::new_v4())
        .await;
    assert_eq!(f.push(3).await, Outcome::UserOnline);
    assert_eq!(f.apns.accepted().len(), 1);
}
