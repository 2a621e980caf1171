//! Push policy and provider settings as flags and env vars, shared by `chat-push` and
//! `chatd` (which runs the worker in process).

use std::time::Duration;

use crate::providers::ProviderSettings;
use crate::PushPolicy;

#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// Attempts per device before a push is dead-lettered.
    #[arg(long, env = "CHAT_PUSH_MAX_ATTEMPTS", default_value_t = 5)]
    pub push_max_attempts: u32,

    /// Show the sender and message text in notifications (off: "New message").
    #[arg(long, env = "CHAT_PUSH_PREVIEW", default_value_t = false)]
    pub push_preview: bool,

    /// Notifications per user per minute; more are dropped.
    #[arg(long, env = "CHAT_PUSH_USER_RATE", default_value_t = 30)]
    pub push_user_rate: u32,

    /// First retry delay of a failed push (doubled each attempt, jittered).
    #[arg(long, env = "CHAT_PUSH_BACKOFF", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub push_backoff: Duration,

    /// Longest retry delay.
    #[arg(long, env = "CHAT_PUSH_BACKOFF_MAX", default_value = "30s", value_parser = humantime::parse_duration)]
    pub push_backoff_max: Duration,

    /// Push jobs one worker process works at once (each sends to all of its user's
    /// devices at once).
    #[arg(long, env = "CHAT_PUSH_CONCURRENCY", default_value_t = 8)]
    pub push_concurrency: usize,

    #[command(flatten)]
    pub providers: ProviderSettings,
}

impl PushArgs {
    pub fn policy(&self) -> PushPolicy {
        PushPolicy {
            max_attempts: self.push_max_attempts,
            preview: self.push_preview,
            user_rate_per_minute: self.push_user_rate,
            backoff_base: self.push_backoff,
            backoff_max: self.push_backoff_max,
            send_timeout: self.providers.push_timeout,
            concurrency: self.push_concurrency.max(1),
            ..PushPolicy::default()
        }
    }
}
