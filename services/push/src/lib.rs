//! Push notifications for users with no device online: the job queue the chat service
//! fills, and the worker that drains it into providers (APNs, FCM).
#![forbid(unsafe_code)]

mod local_queue;
mod policy_args;
pub mod providers;
mod redis_queue;
mod user_rate;
mod worker;

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use serde::{Deserialize, Serialize};

pub use local_queue::LocalPushQueue;
pub use policy_args::PushArgs;
pub use redis_queue::{RedisPushQueue, RedisQueueConfig};
pub use worker::{Outcome, PushPolicy, PushProvider, PushWorker, SendError};

/// One notification to make: a new message in `chat_id` for `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushJob {
    pub user_id: UserId,
    pub chat_id: ChatId,
    pub seq: u64,
    pub sender_id: UserId,
    /// The message text, for providers configured to show previews.
    pub body: String,
    /// Attempts made before this one (kept for jobs written by older versions).
    #[serde(default)]
    pub attempt: u32,
    /// Only these devices (a dead letter names the one device that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<DeviceId>>,
}

/// A job handed to one worker; it must be acked (done), retried or dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub job: PushJob,
    /// Queue-specific handle (the Redis stream entry id; empty in process).
    pub receipt: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("push queue full")]
    Full,
    /// The user already has the most jobs waiting that one user may have.
    #[error("too many push jobs waiting for this user")]
    UserFull,
    #[error("push queue unavailable: {0}")]
    Unavailable(String),
}

impl QueueError {
    /// A metrics label for a job that was not queued.
    pub fn reason(&self) -> &'static str {
        match self {
            QueueError::Full => "queue_full",
            QueueError::UserFull => "user_full",
            QueueError::Unavailable(_) => "unavailable",
        }
    }
}

/// Whether a worker may notify a device for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRight {
    /// This worker sends, and must call `end_send`.
    Granted,
    /// The device was already notified for this job.
    AlreadyDelivered,
    /// Another worker is notifying it right now (or died doing so and its right has not
    /// lapsed yet): try later, never now.
    Busy,
}

/// What `enqueue` did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued as a new job.
    Queued,
    /// A job for the same user and chat is still waiting; this one folds into it (one
    /// notification per chat burst: the worker computes the badge when it runs).
    Collapsed,
}

/// How many jobs may wait at once: per user (one per chat, so this caps the chats).
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    pub max_pending_per_user: usize,
}

impl Default for QueueBounds {
    fn default() -> Self {
        QueueBounds {
            max_pending_per_user: 16,
        }
    }
}

/// A queue of push jobs: in-process in `chatd`, a Redis Stream with a consumer group in
/// the scaled-out mode (durable, at-least-once, re-claimed from dead workers).
#[async_trait]
pub trait PushQueue: Send + Sync + 'static {
    /// Queues a job unless one for the same user and chat is still waiting (then it
    /// collapses into that one). Refused when the queue or the user's share of it is full.
    async fn enqueue(&self, job: PushJob) -> Result<Enqueued, QueueError>;
    /// The next job, waiting up to `wait` for one.
    async fn claim(&self, wait: std::time::Duration) -> Result<Option<ClaimedJob>, QueueError>;
    /// The job is finished (delivered, or nothing left to do).
    async fn ack(&self, job: &ClaimedJob) -> Result<(), QueueError>;
    /// Parks a job (usually narrowed to one device) that failed for good, for operators.
    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), QueueError>;
    /// Runs `job` again after `delay`: a retry of the devices that failed for now. It
    /// does not collapse into a waiting job (those may not name the same devices).
    async fn retry(&self, job: PushJob, delay: Duration) -> Result<(), QueueError>;
    /// Keeps this worker's claim on a job it is still working, so no other worker
    /// re-claims it; false when the claim was lost (another worker has the job now).
    async fn keep_claim(&self, job: &ClaimedJob) -> Result<bool, QueueError>;
    /// Asks for the right to notify `device_id` for this job, held for `hold` (then it
    /// lapses, as for a worker that died mid-send).
    async fn begin_send(&self, job: &ClaimedJob, device_id: &DeviceId, hold: Duration)
        -> SendRight;
    /// Ends a send begun with `begin_send`: a delivered device is remembered (a
    /// re-claimed job skips it); otherwise the right is given back for a retry.
    async fn end_send(&self, job: &ClaimedJob, device_id: &DeviceId, delivered: bool);
}
