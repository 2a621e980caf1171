//! The composition root every binary shares: how each seam — the message store, the bus,
//! presence (a gateway's session tracker, everyone else's read-only view), the push queue
//! — is built for the process's mode: in process for `chatd`, over Redis for the
//! scaled-out services. A binary asks only for the seams it uses, so a gateway never
//! opens the store. Each seam is built once and shared.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chat_bus::{Bus, LocalBus, RedisBus};
use chat_presence::{
    LastSeenPolicy, LocalPresence, PresenceView, RedisPresenceView, RedisSessions, SessionTracker,
};
use chat_push::{LocalPushQueue, PushQueue, QueueBounds, RedisPushQueue, RedisQueueConfig};
use chat_store::{MessageStore, StoreArgs, StoreError};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The Redis the scaled-out services share.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis for fan-out, presence, push jobs and partition leases (`rediss://` for TLS).
    #[arg(
        long,
        env = "CHAT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
}

/// Where the seams live.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Everything in this process (`chatd`).
    Local,
    /// Shared through Redis (the scaled-out services).
    Redis { url: String },
}

/// The settings of the stores and queues, whatever the mode.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub store: StoreArgs,
    /// Where SQLite files live unless a path is configured.
    pub data_dir: PathBuf,
    /// How long dedup entries must outlive (Scylla keeps them by TTL).
    pub dedup_window: Duration,
}

/// How a push queue is bounded.
#[derive(Debug, Clone, Copy)]
pub struct PushQueueSettings {
    /// Jobs held in memory (in process only; Redis bounds its stream itself).
    pub capacity: usize,
    pub bounds: QueueBounds,
    /// A job held this long by a silent worker is taken over (Redis only).
    pub reclaim_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("open the message store")]
    Store(#[source] StoreError),
    #[error("connect Redis ({what})")]
    Redis {
        what: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("connect the push queue")]
    PushQueue(#[source] chat_push::QueueError),
    #[error("this process was given no store to open")]
    NoStore,
}

pub struct Backends {
    mode: Mode,
    /// `None` for processes that must not open the store (gateways).
    settings: Option<BackendSettings>,
    store: OnceCell<Arc<dyn MessageStore>>,
    bus: OnceCell<Arc<dyn Bus>>,
    /// In process, one presence plays every role.
    local_presence: OnceCell<Arc<LocalPresence>>,
    /// Background tasks the seams run (heartbeats), for shutdown to wait on.
    tasks: TaskTracker,
}

fn redis(what: &'static str) -> impl FnOnce(redis::RedisError) -> BackendError {
    move |source| BackendError::Redis { what, source }
}

impl Backends {
    /// Seams for `mode`; without `settings` the store cannot be opened.
    pub fn new(mode: Mode, settings: Option<BackendSettings>) -> Self {
        Backends {
            mode,
            settings,
            store: OnceCell::new(),
            bus: OnceCell::new(),
            local_presence: OnceCell::new(),
            tasks: TaskTracker::new(),
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The Redis URL in the scaled-out mode.
    pub fn redis_url(&self) -> Option<&str> {
        match &self.mode {
            Mode::Redis { url } => Some(url),
            Mode::Local => None,
        }
    }

    pub async fn store(&self) -> Result<Arc<dyn MessageStore>, BackendError> {
        self.store
            .get_or_try_init(|| async {
                let settings = self.settings.as_ref().ok_or(BackendError::NoStore)?;
                settings
                    .store
                    .open(&settings.data_dir, settings.dedup_window)
                    .await
                    .map_err(BackendError::Store)
            })
            .await
            .cloned()
    }

    pub async fn bus(&self) -> Result<Arc<dyn Bus>, BackendError> {
        self.bus
            .get_or_try_init(|| async {
                Ok(match &self.mode {
                    Mode::Local => Arc::new(LocalBus::new()) as Arc<dyn Bus>,
                    Mode::Redis { url } => {
                        Arc::new(RedisBus::connect(url).await.map_err(redis("bus"))?)
                    }
                })
            })
            .await
            .cloned()
    }

    async fn local_presence(&self) -> Result<Arc<LocalPresence>, BackendError> {
        let (store, bus) = (self.store().await?, self.bus().await?);
        Ok(self
            .local_presence
            .get_or_init(|| async { Arc::new(LocalPresence::new(store, bus)) })
            .await
            .clone())
    }

    /// Who is online, for chat services and push workers.
    pub async fn presence_view(&self) -> Result<Arc<dyn PresenceView>, BackendError> {
        Ok(match &self.mode {
            Mode::Local => self.local_presence().await?,
            Mode::Redis { url } => Arc::new(
                RedisPresenceView::connect(url)
                    .await
                    .map_err(redis("presence"))?,
            ),
        })
    }

    /// A gateway's session tracker; over Redis it heartbeats until `shutdown`, and asks
    /// `policy` whether a user's presence frames may carry their last seen (in process,
    /// the store says).
    pub async fn sessions(
        &self,
        gateway_id: &str,
        ttl: Duration,
        shutdown: CancellationToken,
        policy: Arc<dyn LastSeenPolicy>,
    ) -> Result<Arc<dyn SessionTracker>, BackendError> {
        Ok(match &self.mode {
            Mode::Local => self.local_presence().await?,
            Mode::Redis { url } => {
                let bus = self.bus().await?;
                let sessions = RedisSessions::connect(url, gateway_id, ttl, bus, policy)
                    .await
                    .map_err(redis("presence"))?;
                self.tasks.spawn(sessions.spawn_heartbeat(shutdown));
                sessions
            }
        })
    }

    /// The push queue, named `consumer` when this process works it.
    pub async fn push_queue(
        &self,
        consumer: &str,
        settings: PushQueueSettings,
    ) -> Result<Arc<dyn PushQueue>, BackendError> {
        Ok(match &self.mode {
            Mode::Local => Arc::new(LocalPushQueue::with_bounds(
                settings.capacity,
                settings.bounds,
            )),
            Mode::Redis { url } => {
                let mut config = RedisQueueConfig::new(url, consumer);
                config.bounds = settings.bounds;
                config.reclaim_after = settings.reclaim_after;
                Arc::new(
                    RedisPushQueue::connect(config)
                        .await
                        .map_err(BackendError::PushQueue)?,
                )
            }
        })
    }

    /// Waits for the seams' background tasks (after shutdown was signalled).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Where the store lives; flattened into every binary that opens it.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Directory of the SQLite database (and of `chatd`'s generated secret).
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    pub store: StoreArgs,
}

impl StorageArgs {
    pub fn settings(&self, dedup_window: Duration) -> BackendSettings {
        BackendSettings {
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            dedup_window,
        }
    }
}

/// The dedup window processes that only read the store assume (the chat service has
/// its own setting).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);
