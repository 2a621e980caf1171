//! The in-process push queue of `chatd`: a bounded channel. Jobs do not survive a restart;
//! the message itself does, and the user sees it on their next sync. While a job for a
//! (user, chat) waits, later ones collapse into it, and a user has at most a few waiting.
//! Retries wait on a timer, at most as many at once as the queue holds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use tokio::sync::mpsc;

use crate::{ClaimedJob, Enqueued, PushJob, PushQueue, QueueBounds, QueueError, SendRight};

pub struct LocalPushQueue {
    tx: mpsc::Sender<Queued>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Queued>>,
    waiting: Mutex<Waiting>,
    bounds: QueueBounds,
    /// Retries waiting on their timers, bounded like the channel.
    delayed: Arc<AtomicUsize>,
    capacity: usize,
}

/// A job in the channel; only jobs from `enqueue` count in `Waiting` (a retry is not
/// part of a burst).
struct Queued {
    job: PushJob,
    counted: bool,
}

/// The jobs in the channel, by (user, chat) and counted per user.
#[derive(Default)]
struct Waiting {
    bursts: HashSet<(UserId, ChatId)>,
    per_user: HashMap<UserId, usize>,
}

impl Waiting {
    fn remove(&mut self, job: &PushJob) {
        self.bursts
            .remove(&(job.user_id.clone(), job.chat_id.clone()));
        if let Some(n) = self.per_user.get_mut(&job.user_id) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&job.user_id);
            }
        }
    }
}

impl LocalPushQueue {
    pub fn new(capacity: usize) -> Self {
        Self::with_bounds(capacity, QueueBounds::default())
    }

    pub fn with_bounds(capacity: usize, bounds: QueueBounds) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        LocalPushQueue {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            waiting: Mutex::new(Waiting::default()),
            bounds,
            delayed: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
        }
    }
}

#[async_trait]
impl PushQueue for LocalPushQueue {
    async fn enqueue(&self, job: PushJob) -> Result<Enqueued, QueueError> {
        let mut waiting = self.waiting.lock().expect("queue lock");
        let burst = (job.user_id.clone(), job.chat_id.clone());
        if waiting.bursts.contains(&burst) {
            return Ok(Enqueued::Collapsed);
        }
        let of_user = waiting.per_user.get(&job.user_id).copied().unwrap_or(0);
        if of_user >= self.bounds.max_pending_per_user {
            return Err(QueueError::UserFull);
        }
        let user = job.user_id.clone();
        self.tx
            .try_send(Queued { job, counted: true })
            .map_err(|_| QueueError::Full)?;
        waiting.bursts.insert(burst);
        *waiting.per_user.entry(user).or_default() += 1;
        Ok(Enqueued::Queued)
    }

    async fn claim(&self, wait: Duration) -> Result<Option<ClaimedJob>, QueueError> {
        let mut rx = self.rx.lock().await;
        let queued = tokio::time::timeout(wait, rx.recv()).await.ok().flatten();
        if let Some(Queued { job, counted: true }) = &queued {
            // From now on a new message starts a new burst.
            self.waiting.lock().expect("queue lock").remove(job);
        }
        Ok(queued.map(|q| ClaimedJob {
            job: q.job,
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

    async fn retry(&self, job: PushJob, delay: Duration) -> Result<(), QueueError> {
        if self.delayed.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.delayed.fetch_sub(1, Ordering::Relaxed);
            return Err(QueueError::Full);
        }
        let (tx, delayed) = (self.tx.clone(), self.delayed.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            delayed.fetch_sub(1, Ordering::Relaxed);
            if tx
                .try_send(Queued {
                    job,
                    counted: false,
                })
                .is_err()
            {
                metrics::counter!("chat_push_dropped_total", "reason" => "queue_full").increment(1);
            }
        });
        Ok(())
    }

    /// In process, a claimed job is never handed to another worker.
    async fn keep_claim(&self, _job: &ClaimedJob) -> Result<bool, QueueError> {
        Ok(true)
    }

    async fn begin_send(
        &self,
        _job: &ClaimedJob,
        _device: &DeviceId,
        _hold: Duration,
    ) -> SendRight {
        SendRight::Granted
    }

    async fn end_send(&self, _job: &ClaimedJob, _device_id: &DeviceId, _delivered: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(user: &str, chat: &str, seq: u64) -> PushJob {
        PushJob {
            user_id: user.into(),
            chat_id: chat.into(),
            seq,
            sender_id: "alice".into(),
            body: "hi".into(),
            attempt: 0,
            devices: None,
        }
    }

    const WAIT: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn a_burst_in_one_chat_is_one_job_until_claimed() {
        let queue = LocalPushQueue::new(100);
        assert_eq!(
            queue.enqueue(job("bob", "c", 1)).await.unwrap(),
            Enqueued::Queued
        );
        for seq in 2..50 {
            assert_eq!(
                queue.enqueue(job("bob", "c", seq)).await.unwrap(),
                Enqueued::Collapsed
            );
        }
        assert_eq!(
            queue.enqueue(job("carol", "c", 2)).await.unwrap(),
            Enqueued::Queued
        );
        assert_eq!(queue.claim(WAIT).await.unwrap().unwrap().job.seq, 1);
        assert_eq!(
            queue.claim(WAIT).await.unwrap().unwrap().job.user_id,
            "carol"
        );
        assert!(queue.claim(WAIT).await.unwrap().is_none());
        // Claimed: the next message starts a new burst.
        assert_eq!(
            queue.enqueue(job("bob", "c", 60)).await.unwrap(),
            Enqueued::Queued
        );
    }

    #[tokio::test]
    async fn a_user_has_a_bounded_share_and_the_queue_a_bounded_size() {
        let queue = LocalPushQueue::with_bounds(
            3,
            QueueBounds {
                max_pending_per_user: 2,
            },
        );
        queue.enqueue(job("bob", "c1", 1)).await.unwrap();
        queue.enqueue(job("bob", "c2", 1)).await.unwrap();
        assert!(matches!(
            queue.enqueue(job("bob", "c3", 1)).await,
            Err(QueueError::UserFull)
        ));
        queue.enqueue(job("carol", "c1", 1)).await.unwrap();
        assert!(matches!(
            queue.enqueue(job("dave", "c1", 1)).await,
            Err(QueueError::Full)
        ));
        // A refused job leaves no trace: once there is room it is queued.
        queue.claim(WAIT).await.unwrap().unwrap();
        assert_eq!(
            queue.enqueue(job("dave", "c1", 1)).await.unwrap(),
            Enqueued::Queued
        );
    }
}
