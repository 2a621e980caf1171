//! The per-user push rate: at most so many notifications a minute to one user. Its state
//! is an entry per user notified; entries back at a full quota are dropped every so many
//! checks, so it holds the users of about the last minute, not every user ever notified.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use chat_protocol::ids::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// Checks between two sweeps of the entries back at a full quota.
const SWEEP_EVERY: u64 = 4096;

type Limiter<C> =
    RateLimiter<UserId, DashMapStateStore<UserId>, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub(crate) struct UserRate<C: Clock = DefaultClock> {
    limiter: Limiter<C>,
    checks: AtomicU64,
}

impl UserRate {
    pub(crate) fn per_minute(per_minute: u32) -> Self {
        UserRate::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock> UserRate<C> {
    fn with_clock(per_minute: u32, clock: C) -> Self {
        let rate = NonZeroU32::new(per_minute.max(1)).expect("non-zero");
        UserRate {
            limiter: RateLimiter::dashmap_with_clock(Quota::per_minute(rate), clock),
            checks: AtomicU64::new(0),
        }
    }

    /// Whether `user` may get one more notification now (and counts it).
    pub(crate) fn allows(&self, user: &UserId) -> bool {
        let allowed = self.limiter.check_key(user).is_ok();
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        allowed
    }

    #[cfg(test)]
    fn users_held(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn holds_only_the_users_of_about_the_last_minute() {
        let clock = FakeRelativeClock::default();
        let rate = UserRate::with_clock(2, clock.clone());
        let alice = UserId::from("alice");
        assert!(rate.allows(&alice));
        assert!(rate.allows(&alice));
        assert!(!rate.allows(&alice), "over two a minute");
        // A crowd notified once each, then a minute later another crowd: the sweeps drop
        // the first one's entries.
        for i in 0..SWEEP_EVERY {
            assert!(rate.allows(&UserId::from(format!("early{i}").as_str())));
        }
        clock.advance(Duration::from_secs(61));
        for i in 0..SWEEP_EVERY {
            assert!(rate.allows(&UserId::from(format!("late{i}").as_str())));
        }
        let held = rate.users_held();
        assert!(
            held <= SWEEP_EVERY as usize + 1,
            "{held} users held after two crowds of {SWEEP_EVERY}"
        );
        assert!(
            rate.allows(&alice),
            "a minute later alice may be notified again"
        );
    }
}
