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

use crate::{PushJob, PushQueue};

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
    /// The user has no registered device.
    NoDevices,
    /// Devices were tried: how many got it, and how many had no provider configured.
    Processed {
        sent: usize,
        unconfigured: usize,
        failed: usize,
    },
}

pub struct PushWorker {
    queue: Arc<dyn PushQueue>,
    store: Arc<dyn MessageStore>,
    presence: Arc<dyn Presence>,
    providers: Vec<Arc<dyn PushProvider>>,
}

impl PushWorker {
    pub fn new(
        queue: Arc<dyn PushQueue>,
        store: Arc<dyn MessageStore>,
        presence: Arc<dyn Presence>,
        providers: Vec<Arc<dyn PushProvider>>,
    ) -> Self {
        PushWorker {
            queue,
            store,
            presence,
            providers,
        }
    }

    pub async fn try_execute_task(&self, wait: Duration) -> Outcome {
        let job = match self.queue.claim(wait).await {
            Ok(Some(job)) => job,
            Ok(None) => return Outcome::Empty,
            Err(e) => {
                tracing::warn!(error = %e, "push queue claim failed");
                return Outcome::Empty;
            }
        };
        if self.presence.is_online(&job.user_id).await {
            metrics::counter!("chat_push_skipped_total", "reason" => "online").increment(1);
            return Outcome::UserOnline;
        }
        let devices = match self.store.push_devices(&job.user_id).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load push devices");
                metrics::counter!("chat_push_failed_total", "reason" => "store").increment(1);
                return Outcome::Processed {
                    sent: 0,
                    unconfigured: 0,
                    failed: 1,
                };
            }
        };
        if devices.is_empty() {
            metrics::counter!("chat_push_skipped_total", "reason" => "no_devices").increment(1);
            return Outcome::NoDevices;
        }
        let (mut sent, mut unconfigured, mut failed) = (0, 0, 0);
        for device in &devices {
            let Some(provider) = self
                .providers
                .iter()
                .find(|p| p.platform() == device.platform)
            else {
                unconfigured += 1;
                metrics::counter!("chat_push_skipped_total", "reason" => "no_provider")
                    .increment(1);
                continue;
            };
            match provider.send(device, &job).await {
                Ok(()) => {
                    sent += 1;
                    metrics::counter!("chat_push_sent_total").increment(1);
                }
                Err(SendError::BadToken) => {
                    failed += 1;
                    metrics::counter!("chat_push_failed_total", "reason" => "bad_token")
                        .increment(1);
                    if let Err(e) = self
                        .store
                        .delete_push_device(&device.user_id, &device.device_id)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot remove dead push token");
                    }
                }
                Err(SendError::Failed(reason)) => {
                    failed += 1;
                    tracing::warn!(%reason, "push failed");
                    metrics::counter!("chat_push_failed_total", "reason" => "provider")
                        .increment(1);
                }
            }
        }
        Outcome::Processed {
            sent,
            unconfigured,
            failed,
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
