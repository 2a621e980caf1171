//! The push worker: skips users who came online, sends to each registered device through
//! its platform's provider, removes dead tokens, and counts devices with no provider.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_bus::LocalBus;
use chat_presence::{LocalPresence, Presence};
use chat_protocol::PushPlatform;
use chat_push::{LocalPushQueue, Outcome, PushJob, PushProvider, PushQueue, PushWorker, SendError};
use chat_store::{MessageStore, PushDevice, SqliteConfig, SqliteStore};
use uuid::Uuid;

/// A provider that records what it was asked to send and refuses one token as dead.
struct Recorder {
    platform: PushPlatform,
    dead_token: &'static str,
    sent: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl PushProvider for Recorder {
    fn platform(&self) -> PushPlatform {
        self.platform
    }

    async fn send(&self, device: &PushDevice, job: &PushJob) -> Result<(), SendError> {
        if device.token == self.dead_token {
            return Err(SendError::BadToken);
        }
        self.sent
            .lock()
            .unwrap()
            .push((device.token.clone(), job.seq));
        Ok(())
    }
}

fn job(user: &str, seq: u64) -> PushJob {
    PushJob {
        user_id: user.into(),
        chat_id: "c".into(),
        seq,
        sender_id: "alice".into(),
        body: "hi".into(),
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

#[tokio::test]
async fn worker_reacts_to_each_case() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("chat.db"))).unwrap());
    let presence = Arc::new(LocalPresence::new(store.clone(), Arc::new(LocalBus::new())));
    let queue = Arc::new(LocalPushQueue::new(16));
    let apns = Arc::new(Recorder {
        platform: PushPlatform::Apns,
        dead_token: "dead",
        sent: Mutex::new(Vec::new()),
    });
    let worker = PushWorker::new(
        queue.clone(),
        store.clone(),
        presence.clone(),
        vec![apns.clone()],
    );
    let wait = Duration::from_millis(200);

    assert_eq!(worker.try_execute_task(wait).await, Outcome::Empty);

    queue.enqueue(job("nobody", 1)).await.unwrap();
    assert_eq!(worker.try_execute_task(wait).await, Outcome::NoDevices);

    store
        .upsert_push_device(&device("bob", "phone", PushPlatform::Apns, "good"))
        .await
        .unwrap();
    store
        .upsert_push_device(&device("bob", "old-phone", PushPlatform::Apns, "dead"))
        .await
        .unwrap();
    store
        .upsert_push_device(&device("bob", "android", PushPlatform::Fcm, "f1"))
        .await
        .unwrap();
    queue.enqueue(job("bob", 7)).await.unwrap();
    assert_eq!(
        worker.try_execute_task(wait).await,
        Outcome::Processed {
            sent: 1,
            unconfigured: 1,
            failed: 1
        }
    );
    assert_eq!(*apns.sent.lock().unwrap(), vec![("good".to_string(), 7)]);
    let left: Vec<String> = store
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

    presence.connected("bob", Uuid::new_v4()).await;
    queue.enqueue(job("bob", 8)).await.unwrap();
    assert_eq!(worker.try_execute_task(wait).await, Outcome::UserOnline);
    assert_eq!(
        apns.sent.lock().unwrap().len(),
        1,
        "no push to a user who is online"
    );
}
