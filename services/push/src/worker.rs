//! The push worker: claims a job, skips it if the user came online meanwhile, builds the
//! notification (preview or not, badge = total unread) and hands it to the provider of
//! every registered device at once. While it works, it keeps its claim on the job, so a
//! slow provider never lets a second worker re-claim it; each device is notified only
//! under a send right, so no device is notified twice for one job. Devices that failed
//! for now are re-queued as one job with a backoff delay (never slept on here); dead
//! tokens are removed only on the provider's explicit answer; what keeps failing is
//! dead-lettered. `try_execute_task` does one job so tests can drain the queue
//! deterministically; `run` works `concurrency` jobs at a time until shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_presence::PresenceView;
use chat_protocol::ids::DeviceId;
use chat_protocol::PushPlatform;
use chat_store::{MessageStore, PushDevice};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::providers::Notification;
use crate::user_rate::UserRate;
use crate::{ClaimedJob, PushJob, PushQueue, SendRight};

/// How long one claim waits for a job.
const CLAIM_WAIT: Duration = Duration::from_millis(500);
/// A send right outlives the send's timeout by this much.
const SEND_RIGHT_MARGIN: Duration = Duration::from_secs(5);

/// Why a provider did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The provider said the token is dead (APNs 410 Unregistered / BadDeviceToken, FCM
    /// UNREGISTERED, or INVALID_ARGUMENT about `message.token`): it is removed.
    #[error("token no longer valid")]
    BadToken,
    /// Worth another attempt (5xx, 429, timeouts), after `retry_after` if the provider said.
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again (bad payload, bad credentials): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A push provider (APNs, FCM) for one platform.
#[async_trait]
pub trait PushProvider: Send + Sync + 'static {
    fn platform(&self) -> PushPlatform;
    async fn send(&self, device: &PushDevice, notification: &Notification)
        -> Result<(), SendError>;
}

/// How the worker treats users and failures.
#[derive(Debug, Clone)]
pub struct PushPolicy {
    /// Attempts per device before it is dead-lettered.
    pub max_attempts: u32,
    /// Show the sender and text; otherwise "New message".
    pub preview: bool,
    /// Notifications per user per minute; the rest are dropped (the next one carries the
    /// current badge, and each chat collapses to its latest notification anyway).
    pub user_rate_per_minute: u32,
    /// First retry delay; doubled per attempt, with full jitter, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A provider call that takes longer counts as a transient failure.
    pub send_timeout: Duration,
    /// How often a job being worked has its claim kept: well inside the queue's
    /// re-claim time, so a live worker's job is never handed to another.
    pub keep_claim_every: Duration,
    /// Jobs one worker works at once.
    pub concurrency: usize,
}

impl Default for PushPolicy {
    fn default() -> Self {
        PushPolicy {
            max_attempts: 5,
            preview: false,
            user_rate_per_minute: 30,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            send_timeout: Duration::from_secs(10),
            keep_claim_every: Duration::from_secs(15),
            concurrency: 8,
        }
    }
}

/// What one `try_execute_task` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No job was waiting.
    Empty,
    /// The user had a device online by the time the job ran.
    UserOnline,
    /// The user is over their notification rate.
    RateLimited,
    /// The user has no registered device (left to reach).
    NoDevices,
    /// Devices were tried: delivered, skipped for lack of a provider, dead tokens removed,
    /// and given up on (dead-lettered); `retries` counts devices re-queued for later.
    Processed {
        sent: usize,
        unconfigured: usize,
        removed: usize,
        dead_lettered: usize,
        retries: usize,
    },
    /// The store failed; the job stays with the queue for a later attempt.
    Deferred,
}

pub struct PushWorker {
    queue: Arc<dyn PushQueue>,
    store: Arc<dyn MessageStore>,
    presence: Arc<dyn PresenceView>,
    providers: Vec<Arc<dyn PushProvider>>,
    policy: PushPolicy,
    per_user: UserRate,
}

/// What became of one device of a job.
enum DeviceResult {
    Sent,
    /// Reached by an earlier run of this job (a re-claim).
    AlreadyDelivered,
    /// No provider for its platform is configured.
    Unconfigured,
    /// Its token was dead and is removed.
    Removed,
    /// Failed for now: worth another attempt, no sooner than `retry_after`.
    Later {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again.
    Permanent(String),
}

impl PushWorker {
    pub fn new(
        queue: Arc<dyn PushQueue>,
        store: Arc<dyn MessageStore>,
        presence: Arc<dyn PresenceView>,
        providers: Vec<Arc<dyn PushProvider>>,
        policy: PushPolicy,
    ) -> Self {
        PushWorker {
            queue,
            store,
            presence,
            providers,
            per_user: UserRate::per_minute(policy.user_rate_per_minute),
            policy,
        }
    }

    /// Claims and works one job.
    pub async fn try_execute_task(&self, wait: Duration) -> Outcome {
        let claimed = match self.queue.claim(wait).await {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return Outcome::Empty,
            Err(e) => {
                tracing::warn!(error = %e, "push queue claim failed");
                tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                return Outcome::Empty;
            }
        };
        let outcome = self.work(&claimed).await;
        if outcome != Outcome::Deferred {
            if let Err(e) = self.queue.ack(&claimed).await {
                // Not acked: the queue hands it out again; delivered devices are skipped.
                tracing::warn!(error = %e, "push job not acked; it will run again");
            }
        }
        outcome
    }

    async fn work(&self, claimed: &ClaimedJob) -> Outcome {
        let job = &claimed.job;
        if self.presence.is_online(&job.user_id).await {
            metrics::counter!("chat_push_skipped_total", "reason" => "online").increment(1);
            return Outcome::UserOnline;
        }
        let devices = match self.store.push_devices(&job.user_id).await {
            Ok(devices) => devices,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load push devices; the job will be re-claimed");
                return Outcome::Deferred;
            }
        };
        let devices: Vec<PushDevice> = devices
            .into_iter()
            .filter(|d| {
                job.devices
                    .as_ref()
                    .is_none_or(|only| only.contains(&d.device_id))
            })
            .collect();
        if devices.is_empty() {
            metrics::counter!("chat_push_skipped_total", "reason" => "no_devices").increment(1);
            return Outcome::NoDevices;
        }
        if !self.per_user.allows(&job.user_id) {
            metrics::counter!("chat_push_skipped_total", "reason" => "rate_limited").increment(1);
            return Outcome::RateLimited;
        }
        let notification = self.notification(job).await;
        let sends = futures_util::future::join_all(
            devices
                .iter()
                .map(|device| self.deliver(claimed, device, &notification)),
        );
        let results = tokio::select! {
            results = sends => results,
            never = self.keep_claimed(claimed) => match never {},
        };
        self.settle(claimed, &devices, results).await
    }

    /// Keeps the claim on `claimed` until dropped (when the job's sends are done).
    async fn keep_claimed(&self, claimed: &ClaimedJob) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(self.policy.keep_claim_every).await;
            match self.queue.keep_claim(claimed).await {
                Ok(true) => {}
                Ok(false) => {
                    // Sends in flight hold their devices' rights: another worker that has
                    // the job now finds them busy and retries them later.
                    metrics::counter!("chat_push_claims_lost_total").increment(1);
                    tracing::warn!(receipt = %claimed.receipt, "push job claim lost while working it");
                }
                Err(e) => tracing::warn!(error = %e, "push job claim not kept"),
            }
        }
    }

    /// Counts the devices' results; re-queues those that failed for now as one job, or
    /// dead-letters them once the job is out of attempts.
    async fn settle(
        &self,
        claimed: &ClaimedJob,
        devices: &[PushDevice],
        results: Vec<DeviceResult>,
    ) -> Outcome {
        let (mut sent, mut unconfigured, mut removed, mut dead_lettered) = (0, 0, 0, 0);
        let mut later: Vec<DeviceId> = Vec::new();
        let mut wait_at_least = Duration::ZERO;
        let mut last_reason = String::new();
        for (device, result) in devices.iter().zip(results) {
            match result {
                DeviceResult::Sent => sent += 1,
                DeviceResult::AlreadyDelivered => {}
                DeviceResult::Unconfigured => unconfigured += 1,
                DeviceResult::Removed => removed += 1,
                DeviceResult::Permanent(reason) => {
                    dead_lettered += 1;
                    self.dead_letter(claimed, vec![device.device_id.clone()], &reason)
                        .await;
                }
                DeviceResult::Later {
                    reason,
                    retry_after,
                } => {
                    later.push(device.device_id.clone());
                    wait_at_least = wait_at_least.max(retry_after.unwrap_or_default());
                    last_reason = reason;
                }
            }
        }
        let mut retries = 0;
        if !later.is_empty() {
            let attempt = claimed.job.attempt + 1;
            if attempt >= self.policy.max_attempts {
                dead_lettered += later.len();
                self.dead_letter(claimed, later, &last_reason).await;
            } else {
                let delay = self.backoff(attempt, Some(wait_at_least));
                let again = PushJob {
                    attempt,
                    devices: Some(later.clone()),
                    ..claimed.job.clone()
                };
                match self.queue.retry(again, delay).await {
                    Ok(()) => {
                        retries = later.len();
                        metrics::counter!("chat_push_retried_total").increment(later.len() as u64);
                        tracing::info!(reason = %last_reason, attempt, ?delay, "push failed for now; re-queued");
                    }
                    Err(e) => {
                        // Not acked either: the job is claimed again later, and the devices
                        // reached this time are skipped then. (Dead-lettering instead would
                        // need the same queue that just failed, and an ack after a failed
                        // dead letter lost these devices' notification.)
                        tracing::warn!(error = %e, "push retry not queued; the job will be re-claimed");
                        return Outcome::Deferred;
                    }
                }
            }
        }
        Outcome::Processed {
            sent,
            unconfigured,
            removed,
            dead_lettered,
            retries,
        }
    }

    async fn notification(&self, job: &PushJob) -> Notification {
        // The badge counts unread per user; the device named here only selects which
        // device's delivered watermark comes along, which the badge does not use.
        let badge = match self
            .store
            .chats_of_user(&job.user_id, &DeviceId::from("push"))
            .await
        {
            Ok(chats) => chats
                .iter()
                .map(|c| c.unread)
                .sum::<u64>()
                .min(u32::MAX as u64) as u32,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count unread for the badge");
                0
            }
        };
        let (title, body) = if self.policy.preview {
            let body: String = job.body.chars().take(200).collect();
            (Some(job.sender_id.to_string()), body)
        } else {
            (None, "New message".to_owned())
        };
        Notification {
            chat_id: job.chat_id.clone(),
            seq: job.seq,
            title,
            body,
            badge,
        }
    }

    /// One device, one attempt, under the job's send right for it.
    async fn deliver(
        &self,
        claimed: &ClaimedJob,
        device: &PushDevice,
        notification: &Notification,
    ) -> DeviceResult {
        let Some(provider) = self
            .providers
            .iter()
            .find(|p| p.platform() == device.platform)
        else {
            metrics::counter!("chat_push_skipped_total", "reason" => "no_provider").increment(1);
            return DeviceResult::Unconfigured;
        };
        // A live worker ends its send within the timeout; a dead one's right lapses a
        // little later, before the job can be re-claimed from it.
        let hold = self.policy.send_timeout + SEND_RIGHT_MARGIN;
        match self
            .queue
            .begin_send(claimed, &device.device_id, hold)
            .await
        {
            SendRight::Granted => {}
            SendRight::AlreadyDelivered => return DeviceResult::AlreadyDelivered,
            SendRight::Busy => {
                metrics::counter!("chat_push_skipped_total", "reason" => "busy").increment(1);
                return DeviceResult::Later {
                    reason: "another worker is notifying this device".into(),
                    retry_after: None,
                };
            }
        }
        let platform = device.platform.as_str();
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.policy.send_timeout,
            provider.send(device, notification),
        )
        .await
        .unwrap_or_else(|_| {
            Err(SendError::Transient {
                reason: "provider did not answer in time".into(),
                retry_after: None,
            })
        });
        metrics::histogram!("chat_push_send_seconds", "platform" => platform)
            .record(started.elapsed().as_secs_f64());
        self.queue
            .end_send(claimed, &device.device_id, result.is_ok())
            .await;
        match result {
            Ok(()) => {
                metrics::counter!("chat_push_sent_total", "platform" => platform).increment(1);
                DeviceResult::Sent
            }
            Err(SendError::BadToken) => {
                metrics::counter!("chat_push_failed_total", "reason" => "bad_token").increment(1);
                metrics::counter!("chat_push_tokens_removed_total").increment(1);
                // Only this token: the device may have registered a new one since.
                if let Err(e) = self.store.delete_push_token(device).await {
                    tracing::warn!(error = %e, "cannot remove dead push token");
                }
                DeviceResult::Removed
            }
            Err(SendError::Permanent(reason)) => {
                metrics::counter!("chat_push_failed_total", "reason" => "permanent").increment(1);
                DeviceResult::Permanent(reason)
            }
            Err(SendError::Transient {
                reason,
                retry_after,
            }) => {
                metrics::counter!("chat_push_failed_total", "reason" => "transient").increment(1);
                DeviceResult::Later {
                    reason,
                    retry_after,
                }
            }
        }
    }

    /// Exponential backoff with full jitter; a provider's Retry-After is a floor.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .policy
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.policy.backoff_max);
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.0..=1.0));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(self.policy.backoff_max.max(retry_after.unwrap_or_default()))
    }

    async fn dead_letter(&self, claimed: &ClaimedJob, devices: Vec<DeviceId>, reason: &str) {
        let parked = PushJob {
            devices: Some(devices),
            ..claimed.job.clone()
        };
        if let Err(e) = self.queue.dead_letter(&parked, reason).await {
            tracing::warn!(error = %e, "cannot dead-letter push job");
        }
    }

    /// Works up to `concurrency` jobs at a time until `shutdown` is cancelled. A job
    /// already claimed is finished (its sends are bounded by `send_timeout`): dropping it
    /// halfway could leave a device notified but not marked, and notified again.
    pub async fn run(self, shutdown: CancellationToken) {
        let worker = Arc::new(self);
        let loops = (0..worker.policy.concurrency.max(1)).map(|_| {
            let (worker, shutdown) = (worker.clone(), shutdown.clone());
            async move {
                while !shutdown.is_cancelled() {
                    worker.try_execute_task(CLAIM_WAIT).await;
                }
            }
        });
        futures_util::future::join_all(loops).await;
    }
}
