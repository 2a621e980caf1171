//! The push worker with an in-process provider: which devices it tries, what it skips, and
//! that a re-claimed job does not notify a device twice.

use chat_protocol::ids::DeviceId;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_bus::LocalBus;
use chat_presence::LocalPresence;
use chat_protocol::PushPlatform;
use chat_push::providers::Notification;
use chat_push::{
    ClaimedJob, Enqueued, LocalPushQueue, Outcome, PushJob, PushPolicy, PushProvider, PushQueue,
    PushWorker, QueueError, SendError, SendRight,
};
use chat_store::{MessageStore, PushDevice, SqliteConfig, SqliteStore};

/// Records what it sends.
struct Recorder {
    sent: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl PushProvider for Recorder {
    fn platform(&self) -> PushPlatform {
        PushPlatform::Apns
    }

    async fn send(
        &self,
        device: &PushDevice,
        notification: &Notification,
    ) -> Result<(), SendError> {
        self.sent
            .lock()
            .unwrap()
            .push((device.token.clone(), notification.seq));
        Ok(())
    }
}

/// A queue that hands out one job and remembers deliveries, like a re-claim would see them;
/// it counts acks and dead letters, and may refuse retries (as Redis does while away).
struct Reclaimed {
    inner: LocalPushQueue,
    delivered: Mutex<Vec<DeviceId>>,
    refuse_retries: bool,
    acked: Mutex<usize>,
    dead: Mutex<usize>,
}

impl Reclaimed {
    fn new(delivered: Vec<DeviceId>, refuse_retries: bool) -> Self {
        Reclaimed {
            inner: LocalPushQueue::new(16),
            delivered: Mutex::new(delivered),
            refuse_retries,
            acked: Mutex::new(0),
            dead: Mutex::new(0),
        }
    }
}

#[async_trait]
impl PushQueue for Reclaimed {
    async fn enqueue(&self, job: PushJob) -> Result<Enqueued, QueueError> {
        self.inner.enqueue(job).await
    }
    async fn claim(&self, wait: Duration) -> Result<Option<ClaimedJob>, QueueError> {
        self.inner.claim(wait).await
    }
    async fn ack(&self, job: &ClaimedJob) -> Result<(), QueueError> {
        *self.acked.lock().unwrap() += 1;
        self.inner.ack(job).await
    }
    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), QueueError> {
        *self.dead.lock().unwrap() += 1;
        self.inner.dead_letter(job, reason).await
    }
    async fn retry(&self, job: PushJob, delay: Duration) -> Result<(), QueueError> {
        if self.refuse_retries {
            return Err(QueueError::Unavailable("redis is away".into()));
        }
        self.inner.retry(job, delay).await
    }
    async fn keep_claim(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        self.inner.keep_claim(job).await
    }
    async fn begin_send(&self, _job: &ClaimedJob, device_id: &DeviceId, _: Duration) -> SendRight {
        let delivered = self.delivered.lock().unwrap();
        if delivered.iter().any(|d| d == device_id) {
            SendRight::AlreadyDelivered
        } else {
            SendRight::Granted
        }
    }
    async fn end_send(&self, _job: &ClaimedJob, device_id: &DeviceId, delivered: bool) {
        if delivered {
            self.delivered.lock().unwrap().push(device_id.to_owned());
        }
    }
}

fn job(user: &str, seq: u64, devices: Option<Vec<DeviceId>>) -> PushJob {
    PushJob {
        user_id: user.into(),
        chat_id: "c".into(),
        seq,
        sender_id: "alice".into(),
        body: "hi".into(),
        attempt: 0,
        devices,
    }
}

#[tokio::test]
async fn worker_tries_each_device_once_and_skips_what_it_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("chat.db"))).unwrap());
    let presence = Arc::new(LocalPresence::new(store.clone(), Arc::new(LocalBus::new())));
    let queue = Arc::new(Reclaimed::new(vec!["tablet".into()], false));
    let recorder = Arc::new(Recorder {
        sent: Mutex::new(Vec::new()),
    });
    let worker = PushWorker::new(
        queue.clone(),
        store.clone(),
        presence,
        vec![recorder.clone()],
        PushPolicy::default(),
    );
    let wait = Duration::from_millis(200);

    assert_eq!(worker.try_execute_task(wait).await, Outcome::Empty);
    queue.enqueue(job("nobody", 1, None)).await.unwrap();
    assert_eq!(worker.try_execute_task(wait).await, Outcome::NoDevices);

    for (id, platform, token) in [
        ("phone", PushPlatform::Apns, "p"),
        ("tablet", PushPlatform::Apns, "t"),
        ("android", PushPlatform::Fcm, "a"),
    ] {
        let device = PushDevice {
            user_id: "bob".into(),
            device_id: id.into(),
            platform,
            token: token.into(),
        };
        store.upsert_push_device(&device).await.unwrap();
    }
    queue.enqueue(job("bob", 7, None)).await.unwrap();
    // The tablet was reached before (a re-claimed job); android has no provider here.
    assert_eq!(
        worker.try_execute_task(wait).await,
        Outcome::Processed {
            sent: 1,
            unconfigured: 1,
            removed: 0,
            dead_lettered: 0,
            retries: 0
        }
    );
    assert_eq!(*recorder.sent.lock().unwrap(), vec![("p".to_string(), 7)]);

    // A job narrowed to one device reaches only that one.
    queue.delivered.lock().unwrap().clear();
    queue
        .enqueue(job("bob", 8, Some(vec!["tablet".into()])))
        .await
        .unwrap();
    worker.try_execute_task(wait).await;
    assert_eq!(
        recorder.sent.lock().unwrap().last(),
        Some(&("t".to_string(), 8))
    );
}

/// Fails every send, as a provider does while it is unavailable.
struct Unavailable;

#[async_trait]
impl PushProvider for Unavailable {
    fn platform(&self) -> PushPlatform {
        PushPlatform::Apns
    }

    async fn send(&self, _: &PushDevice, _: &Notification) -> Result<(), SendError> {
        Err(SendError::Transient {
            reason: "503".into(),
            retry_after: None,
        })
    }
}

/// A device worth another try, when the retry cannot be queued: the job is neither acked
/// nor dead-lettered, so the queue hands it out again instead of dropping the device.
#[tokio::test]
async fn a_retry_the_queue_cannot_take_leaves_the_job_to_be_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("chat.db"))).unwrap());
    let presence = Arc::new(LocalPresence::new(store.clone(), Arc::new(LocalBus::new())));
    let queue = Arc::new(Reclaimed::new(Vec::new(), true));
    let worker = PushWorker::new(
        queue.clone(),
        store.clone(),
        presence,
        vec![Arc::new(Unavailable)],
        PushPolicy::default(),
    );
    let device = PushDevice {
        user_id: "bob".into(),
        device_id: "phone".into(),
        platform: PushPlatform::Apns,
        token: "p".into(),
    };
    store.upsert_push_device(&device).await.unwrap();
    queue.enqueue(job("bob", 1, None)).await.unwrap();
    let outcome = worker.try_execute_task(Duration::from_millis(200)).await;
    assert_eq!(outcome, Outcome::Deferred);
    assert_eq!(*queue.acked.lock().unwrap(), 0, "not acked");
    assert_eq!(*queue.dead.lock().unwrap(), 0, "not dead-lettered");
}
