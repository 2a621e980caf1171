//! The push worker: claims a job, skips it if the user came online meanwhile, and hands it
//! to the provider of each registered device. `try_execute_task` does one job so tests can
//! drain the queue deterministically; `run` loops it until shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_presence::Presence;
use chat_protocol::PushPlatform;
use chat_store::{MessageStore, PushDevice};
use tokio_util::sync::CancellationToken;

use crate::{ClaimedJob, PushJob, PushQueue};

/// Why a provider did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The token is dead (APNs 410 / FCM UNREGISTERED); it is removed.
    #[error("token no longer valid")]
    BadToken,
    #[error("provider error: {0}")]
    Failed(String),
}

/// A push provider (APNs, FCM) for one platform.
#[async_trait]
pub trait PushProvider: Send + Sync + 'static {
    fn platform(&self) -> PushPlatform;
    async fn send(&self, device: &PushDevice, job: &PushJob) -> Result<(), SendError>;
}

/// What one `try_execute_task` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No job was waiting.
    Empty,
    /// The user had a device online by the time the job ran.
    UserOnline,
    /// The user has no registered device (left to reach).
    NoDevices,
    /// Devices were tried: delivered, without a provider configured, dead tokens removed,
    /// and transient failures queued again for another attempt.
    Processed {
        sent: usize,
        unconfigured: usize,
        removed: usize,
        retried: usize,
    },
    /// Transient failures and no attempts left: parked in the dead letters.
    DeadLettered,
    /// The queue or the store failed; the job stays with the queue for a later attempt.
    Deferred,
}

pub struct PushWorker {
    queue: Arc<dyn PushQueue>,
    store: Arc<dyn MessageStore>,
    presence: Arc<dyn Presence>,
    providers: Vec<Arc<dyn PushProvider>>,
    max_attempts: u32,
}

/// What became of a job that needs another attempt.
enum Retry {
    Requeued,
    DeadLettered,
    /// Neither worked (queue down): the job stays pending and is re-claimed later.
    Left,
}

#[derive(Default)]
struct Tally {
    sent: usize,
    unconfigured: usize,
    removed: usize,
    transient: Vec<String>,
}

impl PushWorker {
    pub fn new(
        queue: Arc<dyn PushQueue>,
        store: Arc<dyn MessageStore>,
        presence: Arc<dyn Presence>,
        providers: Vec<Arc<dyn PushProvider>>,
        max_attempts: u32,
    ) -> Self {
        PushWorker {
            queue,
            store,
            presence,
            providers,
            max_attempts: max_attempts.max(1),
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
        // Requeued and dead-lettered jobs were acked on the way; deferred ones stay with
        // the queue, which hands them out again (at-least-once).
        let finished_here = matches!(
            outcome,
            Outcome::UserOnline | Outcome::NoDevices | Outcome::Processed { retried: 0, .. }
        );
        if finished_here {
            if let Err(e) = self.queue.ack(&claimed).await {
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
                tracing::warn!(error = %e, "cannot load push devices");
                return match self
                    .retry_or_dead_letter(claimed, None, "store unavailable")
                    .await
                {
                    Retry::DeadLettered => Outcome::DeadLettered,
                    Retry::Requeued | Retry::Left => Outcome::Deferred,
                };
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
        let tally = self.deliver(job, &devices).await;
        if tally.transient.is_empty() {
            return Outcome::Processed {
                sent: tally.sent,
                unconfigured: tally.unconfigured,
                removed: tally.removed,
                retried: 0,
            };
        }
        let retried = tally.transient.len();
        match self
            .retry_or_dead_letter(claimed, Some(tally.transient), "provider failures")
            .await
        {
            Retry::Requeued => Outcome::Processed {
                sent: tally.sent,
                unconfigured: tally.unconfigured,
                removed: tally.removed,
                retried,
            },
            Retry::DeadLettered => Outcome::DeadLettered,
            Retry::Left => Outcome::Deferred,
        }
    }

    async fn deliver(&self, job: &PushJob, devices: &[PushDevice]) -> Tally {
        let mut tally = Tally::default();
        for device in devices {
            let Some(provider) = self
                .providers
                .iter()
                .find(|p| p.platform() == device.platform)
            else {
                tally.unconfigured += 1;
                metrics::counter!("chat_push_skipped_total", "reason" => "no_provider")
                    .increment(1);
                continue;
            };
            match provider.send(device, job).await {
                Ok(()) => {
                    tally.sent += 1;
                    metrics::counter!("chat_push_sent_total").increment(1);
                }
                Err(SendError::BadToken) => {
                    tally.removed += 1;
                    metrics::counter!("chat_push_tokens_removed_total").increment(1);
                    if let Err(e) = self
                        .store
                        .delete_push_device(&device.user_id, &device.device_id)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot remove dead push token");
                    }
                }
                Err(SendError::Failed(reason)) => {
                    tracing::warn!(%reason, "push failed");
                    metrics::counter!("chat_push_failed_total", "reason" => "provider")
                        .increment(1);
                    tally.transient.push(device.device_id.clone());
                }
            }
        }
        tally
    }

    /// Queues the job again for the devices still to reach (acking the original), or
    /// dead-letters it when out of attempts.
    async fn retry_or_dead_letter(
        &self,
        claimed: &ClaimedJob,
        devices: Option<Vec<String>>,
        reason: &str,
    ) -> Retry {
        let job = &claimed.job;
        if job.attempt + 1 >= self.max_attempts {
            return match self.queue.dead_letter(claimed, reason).await {
                Ok(()) => Retry::DeadLettered,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot dead-letter push job");
                    Retry::Left
                }
            };
        }
        let next = PushJob {
            attempt: job.attempt + 1,
            devices: devices.or_else(|| job.devices.clone()),
            ..job.clone()
        };
        metrics::counter!("chat_push_retried_total").increment(1);
        if let Err(e) = self.queue.enqueue(next).await {
            tracing::warn!(error = %e, "cannot requeue push job; it will be re-claimed");
            return Retry::Left;
        }
        if let Err(e) = self.queue.ack(claimed).await {
            // The requeued copy and the original may both run: a duplicate, never a loss.
            tracing::warn!(error = %e, "push job not acked after requeue");
        }
        Retry::Requeued
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
