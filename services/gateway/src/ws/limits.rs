//! Per-connection limits: token-bucket rate limits for sends and typing, and the meter of
//! protocol violations that closes an abusive connection.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub(crate) struct RateLimit {
    limiter: DefaultDirectRateLimiter,
}

impl RateLimit {
    pub(crate) fn per_second(rate: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(rate.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(burst.max(1)).expect("non-zero");
        RateLimit {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Ok, or how long until the next frame would be allowed.
    pub(crate) fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Counts violations in a sliding 10 s window.
pub(crate) struct ViolationMeter {
    window_start: Instant,
    count: u32,
    max: u32,
}

const WINDOW: Duration = Duration::from_secs(10);

impl ViolationMeter {
    pub(crate) fn new(max: u32) -> Self {
        ViolationMeter {
            window_start: Instant::now(),
            count: 0,
            max,
        }
    }

    /// Records one violation; true when the connection has now gone over the limit.
    pub(crate) fn record(&mut self) -> bool {
        if self.window_start.elapsed() > WINDOW {
            self.window_start = Instant::now();
            self.count = 0;
        }
        self.count += 1;
        metrics::counter!("chat_ws_violations_total").increment(1);
        self.count > self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_the_burst_then_refuses() {
        let limit = RateLimit::per_second(1, 3);
        for _ in 0..3 {
            assert!(limit.check().is_ok());
        }
        let wait = limit.check().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
    }

    #[test]
    fn meter_trips_after_the_maximum() {
        let mut meter = ViolationMeter::new(2);
        assert!(!meter.record());
        assert!(!meter.record());
        assert!(meter.record());
    }
}
