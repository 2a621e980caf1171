//! Push notifications for users with no device online: the job queue the chat service
//! fills, and the worker that drains it into providers (APNs, FCM).
#![forbid(unsafe_code)]

mod local_queue;
mod worker;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use local_queue::LocalPushQueue;
pub use worker::{Outcome, PushProvider, PushWorker, SendError};

/// One notification to make: a new message in `chat_id` for `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushJob {
    pub user_id: String,
    pub chat_id: String,
    pub seq: u64,
    pub sender_id: String,
    /// The message text, for providers configured to show previews.
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("push queue full")]
    Full,
    #[error("push queue unavailable: {0}")]
    Unavailable(String),
}

/// A durable (or, in `chatd`, in-process) queue of push jobs.
#[async_trait]
pub trait PushQueue: Send + Sync + 'static {
    async fn enqueue(&self, job: PushJob) -> Result<(), QueueError>;
    /// The next job, waiting up to `wait` for one.
    async fn claim(&self, wait: std::time::Duration) -> Result<Option<PushJob>, QueueError>;
}
