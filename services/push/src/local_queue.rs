//! The in-process push queue of `chatd`: a bounded channel. Jobs do not survive a restart;
//! the message itself does, and the user sees it on their next sync.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Mutex};

use crate::{ClaimedJob, PushJob, PushQueue, QueueError};

pub struct LocalPushQueue {
    tx: mpsc::Sender<PushJob>,
    rx: Mutex<mpsc::Receiver<PushJob>>,
}

impl LocalPushQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        LocalPushQueue {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

#[async_trait]
impl PushQueue for LocalPushQueue {
    async fn enqueue(&self, job: PushJob) -> Result<(), QueueError> {
        self.tx.try_send(job).map_err(|_| QueueError::Full)
    }

    async fn claim(&self, wait: Duration) -> Result<Option<ClaimedJob>, QueueError> {
        let mut rx = self.rx.lock().await;
        let job = tokio::time::timeout(wait, rx.recv()).await.ok().flatten();
        Ok(job.map(|job| ClaimedJob {
            job,
            receipt: String::new(),
        }))
    }

    async fn ack(&self, _job: &ClaimedJob) -> Result<(), QueueError> {
        Ok(())
    }

    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), QueueError> {
        metrics::counter!("chat_push_dead_lettered_total").increment(1);
        tracing::warn!(user_id = %job.user_id, chat_id = %job.chat_id, devices = ?job.devices, reason, "push job dead-lettered");
        Ok(())
    }

    /// In process, a claimed job is never handed out twice.
    async fn was_delivered(&self, _job: &ClaimedJob, _device_id: &str) -> bool {
        false
    }

    async fn record_delivered(&self, _job: &ClaimedJob, _device_id: &str) {}
}
