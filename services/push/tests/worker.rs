//! The push worker: skips users who came online, sends to each registered device through
//! its platform's provider, removes dead tokens, retries transient failures only for the
//! devices that failed, and dead-letters after the last attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_bus::LocalBus;
use chat_presence::{LocalPresence, Presence};
use chat_protocol::PushPlatform;
use chat_push::{LocalPushQueue, Outcome, PushJob, PushProvider, PushQueue, PushWorker, SendError};
use chat_store::{MessageStore, PushDevice, SqliteConfig, SqliteStore};
use uuid::Uuid;

/// A provider that records what it sends, refuses one token as dead and fails another
/// transiently.
struct Recorder {
    platform: PushPlatform,
    sent: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl PushProvider for Recorder {
    fn platform(&self) -> PushPlatform {
        self.platform
    }

    async fn send(&self, device: &PushDevice, job: &PushJob) -> Result<(), SendError> {
        match device.token.as_str() {
            "dead" => Err(SendError::BadToken),
            "flaky" => Err(SendError::Failed("503".into())),
            token => {
                self.sent.lock().unwrap().push((token.to_owned(), job.seq));
                Ok(())
            }
        }
    }
}

fn job(user: &str, seq: u64) -> PushJob {
    PushJob {
        user_id: user.into(),
        chat_id: "c".into(),
        seq,
        sender_id: "alice".into(),
        body: "hi".into(),
        attempt: 0,
        devices: None,
    }
}

fn device(user: &str, id: &str, platform: PushPlatform, token: &str) -> PushDevice {
    PushDevice {
        user_id: user.into(),
        device_id: id.into(),
        platform,
        token: token.into(),
    }
}

struct Fixture {
    store: Arc<dyn MessageStore>,
    presence: Arc<LocalPresence>,
    queue: Arc<LocalPushQueue>,
    apns: Arc<Recorder>,
    worker: PushWorker,
    _dir: tempfile::TempDir,
}

fn fixture(max_attempts: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("chat.db"))).unwrap());
    let presence = Arc::new(LocalPresence::new(store.clone(), Arc::new(LocalBus::new())));
    let queue = Arc::new(LocalPushQueue::new(16));
    let apns = Arc::new(Recorder {
        platform: PushPlatform::Apns,
        sent: Mutex::new(Vec::new()),
    });
    let worker = PushWorker::new(
        queue.clone(),
        store.clone(),
        presence.clone(),
        vec![apns.clone()],
        max_attempts,
    );
    Fixture {
        store,
        presence,
        queue,
        apns,
        worker,
        _dir: dir,
    }
}

const WAIT: Duration = Duration::from_millis(200);

#[tokio::test]
async fn worker_reacts_to_each_case() {
    let f = fixture(3);
    assert_eq!(f.worker.try_execute_task(WAIT).await, Outcome::Empty);

    f.queue.enqueue(job("nobody", 1)).await.unwrap();
    assert_eq!(f.worker.try_execute_task(WAIT).await, Outcome::NoDevices);

    f.store
        .upsert_push_device(&device("bob", "phone", PushPlatform::Apns, "good"))
        .await
        .unwrap();
    f.store
        .upsert_push_device(&device("bob", "old-phone", PushPlatform::Apns, "dead"))
        .await
        .unwrap();
    f.store
        .upsert_push_device(&device("bob", "android", PushPlatform::Fcm, "f1"))
        .await
        .unwrap();
    f.queue.enqueue(job("bob", 7)).await.unwrap();
    assert_eq!(
        f.worker.try_execute_task(WAIT).await,
        Outcome::Processed {
            sent: 1,
            unconfigured: 1,
            removed: 1,
            retried: 0
        }
    );
    assert_eq!(*f.apns.sent.lock().unwrap(), vec![("good".to_string(), 7)]);
    let left: Vec<String> = f
        .store
        .push_devices("bob")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(
        left,
        vec!["android".to_string(), "phone".to_string()],
        "the dead token is removed"
    );

    f.presence.connected("bob", Uuid::new_v4()).await;
    f.queue.enqueue(job("bob", 8)).await.unwrap();
    assert_eq!(f.worker.try_execute_task(WAIT).await, Outcome::UserOnline);
    assert_eq!(
        f.apns.sent.lock().unwrap().len(),
        1,
        "no push to a user who is online"
    );
}

#[tokio::test]
async fn transient_failures_retry_only_the_failed_devices_then_dead_letter() {
    let f = fixture(2);
    f.store
        .upsert_push_device(&device("bob", "phone", PushPlatform::Apns, "good"))
        .await
        .unwrap();
    f.store
        .upsert_push_device(&device("bob", "tablet", PushPlatform::Apns, "flaky"))
        .await
        .unwrap();
    f.queue.enqueue(job("bob", 1)).await.unwrap();
    assert_eq!(
        f.worker.try_execute_task(WAIT).await,
        Outcome::Processed {
            sent: 1,
            unconfigured: 0,
            removed: 0,
            retried: 1
        }
    );
    // The retry targets the tablet only, so the phone is not notified twice.
    let retry = f.queue.claim(WAIT).await.unwrap().expect("requeued");
    assert_eq!(retry.job.attempt, 1);
    assert_eq!(retry.job.devices, Some(vec!["tablet".to_string()]));
    f.queue.enqueue(retry.job).await.unwrap();
    assert_eq!(f.worker.try_execute_task(WAIT).await, Outcome::DeadLettered);
    assert_eq!(f.apns.sent.lock().unwrap().len(), 1);
    assert_eq!(f.worker.try_execute_task(WAIT).await, Outcome::Empty);
}
