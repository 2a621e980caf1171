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
use chat_push::providers::{ApnsConfig, ApnsProvider, FcmConfig, FcmCredentials, FcmProvider};
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
        ..PushPolicy::default()
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
    let fcm_provider = FcmProvider::new(FcmConfig {
        credentials: FcmCredentials::ServiceAccount(
            fcm.service_account_json("example-project", FCM_KEY),
        ),
        project_id: None,
        endpoint: fcm.url.clone(),
        timeout: Duration::from_secs(5),
    })
    .await
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

    /// Works re-queued retries until none comes within `WAIT`; their outcomes in order.
    async fn drain_retries(&self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        loop {
            match self.worker.try_execute_task(Duration::from_secs(2)).await {
                Outcome::Empty => return outcomes,
                outcome => outcomes.push(outcome),
            }
        }
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
        version: 0,
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

fn apns(status: u16, reason: &'static str, retry_after_secs: Option<u64>) -> ApnsReply {
    ApnsReply {
        status,
        reason: Some(reason),
        retry_after_secs,
    }
}

fn fcm(status: u16, error_status: &'static str, error_code: Option<&'static str>) -> FcmReply {
    FcmReply {
        status,
        error_status,
        error_code,
        retry_after_secs: None,
    }
}

#[tokio::test]
async fn dead_tokens_are_removed_only_on_the_providers_explicit_answer() {
    let f = fixture(policy()).await;
    f.device("gone", PushPlatform::Apns, "t-gone").await;
    f.device("bad", PushPlatform::Apns, "t-bad").await;
    f.device("unreg", PushPlatform::Fcm, "f-unreg").await;
    f.device("invalid", PushPlatform::Fcm, "f-invalid").await;
    f.device("fine", PushPlatform::Fcm, "f-fine").await;
    f.device("proxied", PushPlatform::Fcm, "f-proxied").await;
    f.device("payload", PushPlatform::Fcm, "f-payload").await;
    f.device("apns-404", PushPlatform::Apns, "t-404").await;
    f.apns
        .script_token("t-bad", [apns(400, "BadDeviceToken", None)]);
    f.apns
        .script_token("t-gone", [apns(410, "Unregistered", None)]);
    f.fcm.script_token(
        "f-invalid",
        [fcm(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"))],
    );
    f.fcm
        .script_token("f-unreg", [fcm(404, "NOT_FOUND", Some("UNREGISTERED"))]);
    // Not a word from Google about the token: a bare 404 (a wrong endpoint, a proxy) and
    // an INVALID_ARGUMENT about the payload. Nor from Apple: 404 BadPath.
    f.fcm.script_token("f-proxied", [fcm(404, "", None)]);
    f.fcm
        .script_token("f-payload", [fcm(400, "INVALID_ARGUMENT", None)]);
    f.apns.script_token("t-404", [apns(404, "BadPath", None)]);
    let outcome = f.push(1).await;
    assert_eq!(
        outcome,
        Outcome::Processed {
            sent: 1,
            unconfigured: 0,
            removed: 4,
            dead_lettered: 3,
            retries: 0
        }
    );
    assert_eq!(
        f.devices().await,
        vec!["apns-404", "fine", "payload", "proxied"],
        "only the four tokens the providers called dead are gone"
    );
    f.assert_all_requests_valid();
}

#[tokio::test]
async fn transient_failures_are_requeued_with_a_delay_and_persistent_ones_dead_lettered() {
    let f = fixture(policy()).await;
    f.device("iphone", PushPlatform::Apns, "tok").await;
    f.device("pixel", PushPlatform::Fcm, "ftok").await;
    // The iPhone: 503, then 429 with Retry-After, then success. The Pixel at once.
    f.apns.script_token(
        "tok",
        [
            apns(503, "ServiceUnavailable", None),
            apns(429, "TooManyRequests", Some(1)),
        ],
    );
    let started = std::time::Instant::now();
    let first = f.push(1).await;
    assert_eq!(
        first,
        Outcome::Processed {
            sent: 1,
            unconfigured: 0,
            removed: 0,
            dead_lettered: 0,
            retries: 1
        },
        "the Pixel is notified at once; the iPhone re-queued, not waited for"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no retry slept inline"
    );
    let retries = f.drain_retries().await;
    assert_eq!(
        retries.len(),
        2,
        "two more runs, each for the iPhone only: {retries:?}"
    );
    assert_eq!(retries[1], delivered(1));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(f.apns.accepted().len(), 3);
    assert_eq!(f.fcm.delivered().len(), 1, "the Pixel was notified once");

    // Failing every attempt: dead-lettered after max_attempts, token kept.
    f.apns.script_token(
        "tok",
        (0..3).map(|_| apns(500, "InternalServerError", None)),
    );
    f.push(2).await;
    let retries = f.drain_retries().await;
    assert_eq!(
        retries.last(),
        Some(&Outcome::Processed {
            sent: 0,
            unconfigured: 0,
            removed: 0,
            dead_lettered: 1,
            retries: 0
        })
    );
    assert_eq!(retries.len(), 2, "three attempts in all");
    assert_eq!(
        f.devices().await,
        vec!["iphone".to_string(), "pixel".to_string()]
    );
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

/// Sends refused together with the same expired token renew it once, not once each.
#[tokio::test]
async fn sends_refused_together_renew_the_access_token_once() {
    let f = fixture(policy()).await;
    f.device("pixel", PushPlatform::Fcm, "ftok1").await;
    f.device("tablet", PushPlatform::Fcm, "ftok2").await;
    let unauthenticated = FcmReply {
        status: 401,
        error_status: "UNAUTHENTICATED",
        error_code: None,
        retry_after_secs: None,
    };
    f.fcm.script([unauthenticated.clone(), unauthenticated]);
    assert_eq!(f.push(1).await, delivered(2));
    assert_eq!(
        f.fcm.tokens_issued(),
        2,
        "one new access token for both 401s"
    );
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
