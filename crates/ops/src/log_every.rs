//! Logging a repeated event once per interval with a count, instead of once per event, so
//! a flood of drops (push jobs, refused connections) cannot flood the log as well.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LogEvery {
    interval: Duration,
    unreported: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl LogEvery {
    pub const fn new(interval: Duration) -> Self {
        LogEvery {
            interval,
            unreported: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Counts one event; returns how many to report when a report is due now (the first
    /// event, then at most once per interval), else `None`.
    pub fn event(&self) -> Option<u64> {
        self.unreported.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().expect("log-every lock");
        let due = last.is_none_or(|at| at.elapsed() >= self.interval);
        if !due {
            return None;
        }
        *last = Some(Instant::now());
        Some(self.unreported.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_event_then_batches() {
        let log = LogEvery::new(Duration::from_secs(3600));
        assert_eq!(log.event(), Some(1));
        for _ in 0..1000 {
            assert_eq!(log.event(), None);
        }
    }

    #[test]
    fn reports_the_count_once_the_interval_passed() {
        let log = LogEvery::new(Duration::from_millis(20));
        assert_eq!(log.event(), Some(1));
        assert_eq!(log.event(), None);
        assert_eq!(log.event(), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(log.event(), Some(3));
    }
}
