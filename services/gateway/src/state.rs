//! What every handler shares: the chat service handle, the session tracker, keys, the
//! connection registry, the limits and the gateway's settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chat_api::{ChatApi, UserId};
use chat_auth::JwtKeys;
use chat_presence::SessionTracker;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::limits::{LimitClass, Limits};
use crate::registry::Registry;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) chat: Arc<dyn ChatApi>,
    pub(crate) sessions: Arc<dyn SessionTracker>,
    pub(crate) keys: Arc<JwtKeys>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) server_id: Arc<str>,
    /// Cancelled when the gateway starts draining.
    pub(crate) shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub(crate) connections: TaskTracker,
    pub(crate) draining: Arc<AtomicBool>,
}

impl AppState {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Spends one unit of `user`'s `class` rate, or answers 429 with `Retry-After`.
    pub(crate) fn admit(&self, class: LimitClass, user: &UserId) -> Result<(), ApiError> {
        self.limits
            .check(class, user)
            .map_err(ApiError::rate_limited)
    }
}
