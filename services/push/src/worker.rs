//! The push worker: claims a job, skips it if the user came online meanwhile, builds the
//! notification (preview or not, badge = total unread) and hands it to the provider of each
//! registered device — retrying transient failures with exponential backoff and jitter,
//! removing dead tokens, dead-lettering what keeps failing. `try_execute_task` does one
//! job so tests can drain the queue deterministically; `run` loops it until shutdown.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_presence::PresenceView;
use chat_protocol::ids::{DeviceId, UserId};
use chat_protocol::PushPlatform;
use chat_store::{MessageStore, PushDevice};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::providers::Notification;
use crate::{ClaimedJob, PushJob, PushQueue};

/// Why a provider did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The token is dead (APNs 410 / BadDeviceToken, FCM UNREGISTERED / INVALID_ARGUMENT):
    /// it is removed.
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
}

impl Default for PushPolicy {
    fn default() -> Self {
        PushPolicy {
            max_attempts: 5,
            preview: false,
            user_rate_per_minute: 30,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
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
    /// and given up on (dead-lettered); `retries` counts the repeated attempts.
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
    per_user: DefaultKeyedRateLimiter<UserId>,
}

#[derive(Default)]
struct Tally {
    sent: usize,
    unconfigured: usize,
    removed: usize,
    dead_lettered: usize,
    retries: usize,
}

impl PushWorker {
    pub fn new(
        queue: Arc<dyn PushQueue>,
        store: Arc<dyn MessageStore>,
        presence: Arc<dyn PresenceView>,
        providers: Vec<Arc<dyn PushProvider>>,
        policy: PushPolicy,
    ) -> Self {
        let rate = NonZeroU32::new(policy.user_rate_per_minute.max(1)).expect("non-zero");
        PushWorker {
            queue,
            store,
            presence,
            providers,
            per_user: RateLimiter::keyed(Quota::per_minute(rate)),
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
        if self.per_user.check_key(&job.user_id).is_err() {
            metrics::counter!("chat_push_skipped_total", "reason" => "rate_limited").increment(1);
            return Outcome::RateLimited;
        }
        let notification = self.notification(job).await;
        let mut tally = Tally::default();
        for device in &devices {
            if self.queue.was_delivered(claimed, &device.device_id).await {
                continue;
            }
            self.deliver(claimed, device, &notification, &mut tally)
                .await;
        }
        Outcome::Processed {
            sent: tally.sent,
            unconfigured: tally.unconfigured,
            removed: tally.removed,
            dead_lettered: tally.dead_lettered,
            retries: tally.retries,
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

    /// One device: attempts with backoff until delivered, dead, or out of attempts.
    async fn deliver(
        &self,
        claimed: &ClaimedJob,
        device: &PushDevice,
        notification: &Notification,
        tally: &mut Tally,
    ) {
        let Some(provider) = self
            .providers
            .iter()
            .find(|p| p.platform() == device.platform)
        else {
            tally.unconfigured += 1;
            metrics::counter!("chat_push_skipped_total", "reason" => "no_provider").increment(1);
            return;
        };
        let platform = device.platform.as_str();
        for attempt in 1..=self.policy.max_attempts {
            let started = Instant::now();
            let result = provider.send(device, notification).await;
            metrics::histogram!("chat_push_send_seconds", "platform" => platform)
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    tally.sent += 1;
                    metrics::counter!("chat_push_sent_total", "platform" => platform).increment(1);
                    self.queue
                        .record_delivered(claimed, &device.device_id)
                        .await;
                    return;
                }
                Err(SendError::BadToken) => {
                    tally.removed += 1;
                    metrics::counter!("chat_push_failed_total", "reason" => "bad_token")
                        .increment(1);
                    metrics::counter!("chat_push_tokens_removed_total").increment(1);
                    if let Err(e) = self
                        .store
                        .delete_push_device(&device.user_id, &device.device_id)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot remove dead push token");
                    }
                    return;
                }
                Err(SendError::Permanent(reason)) => {
                    metrics::counter!("chat_push_failed_total", "reason" => "permanent")
                        .increment(1);
                    self.dead_letter(claimed, device, &reason, tally).await;
                    return;
                }
                Err(SendError::Transient {
                    reason,
                    retry_after,
                }) => {
                    metrics::counter!("chat_push_failed_total", "reason" => "transient")
                        .increment(1);
                    if attempt == self.policy.max_attempts {
                        self.dead_letter(claimed, device, &reason, tally).await;
                        return;
                    }
                    tally.retries += 1;
                    metrics::counter!("chat_push_retried_total").increment(1);
                    tracing::info!(%reason, attempt, "push failed; retrying");
                    tokio::time::sleep(self.backoff(attempt, retry_after)).await;
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

    async fn dead_letter(
        &self,
        claimed: &ClaimedJob,
        device: &PushDevice,
        reason: &str,
        tally: &mut Tally,
    ) {
        tally.dead_lettered += 1;
        let parked = PushJob {
            devices: Some(vec![device.device_id.clone()]),
            ..claimed.job.clone()
        };
        if let Err(e) = self.queue.dead_letter(&parked, reason).await {
            tracing::warn!(error = %e, "cannot dead-letter push job");
        }
    }

    /// Works jobs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.try_execute_task(Duration::from_millis(500)) => {}
            }
        }
    }
}
