//! What a gateway bounds for each user and for the server as a whole: per-user rates for
//! every kind of work a client can ask for (WebSocket and REST share them), and memory
//! budgets for the replies connections are owed and the events queued for them.

mod budget;
mod config;
mod rate;

use std::sync::Arc;
use std::time::Duration;

use chat_api::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use tokio_util::sync::CancellationToken;

pub(crate) use budget::{MemoryBudget, Reservation};
pub use config::LimitsConfig;
pub use rate::RateSpec;

/// The kinds of work rated per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitClass {
    Send,
    ChatCreate,
    Members,
    Reads,
    Receipts,
    Typing,
    Presence,
    Devices,
    Connects,
}

const CLASSES: usize = 9;

impl LimitClass {
    /// The label of `chat_limit_hits_total` when this class's rate bites.
    pub(crate) fn metric_name(self) -> &'static str {
        match self {
            LimitClass::Send => "user_send_rate",
            LimitClass::ChatCreate => "user_chat_create_rate",
            LimitClass::Members => "user_members_rate",
            LimitClass::Reads => "user_reads_rate",
            LimitClass::Receipts => "user_receipts_rate",
            LimitClass::Typing => "user_typing_rate",
            LimitClass::Presence => "user_presence_rate",
            LimitClass::Devices => "user_devices_rate",
            LimitClass::Connects => "user_connects_rate",
        }
    }
}

/// Counts one time a limit bit; `limit` names it (see docs/operations.md).
pub(crate) fn record_hit(limit: &'static str) {
    metrics::counter!("chat_limit_hits_total", "limit" => limit).increment(1);
}

/// How often idle per-user rate state is forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct Limits {
    pub(crate) config: LimitsConfig,
    per_user: [Option<DefaultKeyedRateLimiter<UserId>>; CLASSES],
    /// Replies owed to connections (in flight or not yet written).
    pub(crate) replies: Arc<MemoryBudget>,
    /// Events queued for connections.
    pub(crate) outbound: Arc<MemoryBudget>,
}

impl Limits {
    pub(crate) fn new(config: LimitsConfig) -> Arc<Self> {
        let spec = |class| match class {
            LimitClass::Send => config.limit_send,
            LimitClass::ChatCreate => config.limit_chat_create,
            LimitClass::Members => config.limit_members,
            LimitClass::Reads => config.limit_reads,
            LimitClass::Receipts => config.limit_receipts,
            LimitClass::Typing => config.limit_typing,
            LimitClass::Presence => config.limit_presence,
            LimitClass::Devices => config.limit_devices,
            LimitClass::Connects => config.limit_connects,
        };
        let limiter = |class: LimitClass| spec(class).quota().map(RateLimiter::keyed);
        Arc::new(Limits {
            per_user: [
                limiter(LimitClass::Send),
                limiter(LimitClass::ChatCreate),
                limiter(LimitClass::Members),
                limiter(LimitClass::Reads),
                limiter(LimitClass::Receipts),
                limiter(LimitClass::Typing),
                limiter(LimitClass::Presence),
                limiter(LimitClass::Devices),
                limiter(LimitClass::Connects),
            ],
            replies: MemoryBudget::new("replies", config.reply_memory_bytes),
            outbound: MemoryBudget::new("outbound", config.outbound_memory_bytes),
            config,
        })
    }

    /// Takes one unit of `class` from `user`'s budget: Ok, or how long until one is free
    /// (nothing is taken then).
    pub(crate) fn check(&self, class: LimitClass, user: &UserId) -> Result<(), Duration> {
        let Some(limiter) = &self.per_user[class as usize] else {
            return Ok(());
        };
        limiter.check_key(user).map_err(|not_until| {
            record_hit(class.metric_name());
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// Forgets the rate state of users who have been idle long enough to be back at a
    /// full budget, every minute until `shutdown`, so the state is bounded by active users.
    pub(crate) fn spawn_cleanup(self: &Arc<Self>, shutdown: CancellationToken) {
        let limits = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                for limiter in limits.per_user.iter().flatten() {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_their_own_budget_per_class() {
        let limits = Limits::new(LimitsConfig {
            limit_send: RateSpec::per_second(1, 2),
            limit_reads: RateSpec::OFF,
            ..LimitsConfig::default()
        });
        let (alice, bob) = (UserId::from("alice"), UserId::from("bob"));
        assert!(limits.check(LimitClass::Send, &alice).is_ok());
        assert!(limits.check(LimitClass::Send, &alice).is_ok());
        let wait = limits.check(LimitClass::Send, &alice).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            limits.check(LimitClass::Send, &bob).is_ok(),
            "bob is not alice"
        );
        for _ in 0..1000 {
            assert!(
                limits.check(LimitClass::Reads, &alice).is_ok(),
                "off means off"
            );
        }
    }
}
