//! A server-wide memory budget in bytes: reservations are taken before the memory is
//! used and returned when it is freed, so the total cannot grow past the budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) struct MemoryBudget {
    used: AtomicUsize,
    max: usize,
    gauge: metrics::Gauge,
}

/// Bytes held against a budget until dropped.
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl MemoryBudget {
    /// `name` labels the `chat_memory_budget_used_bytes` gauge.
    pub(crate) fn new(name: &'static str, max: usize) -> Arc<Self> {
        metrics::gauge!("chat_memory_budget_max_bytes", "budget" => name).set(max as f64);
        Arc::new(MemoryBudget {
            used: AtomicUsize::new(0),
            max,
            gauge: metrics::gauge!("chat_memory_budget_used_bytes", "budget" => name),
        })
    }

    /// Reserves `bytes`, or `None` when that would take the total past the budget.
    pub(crate) fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let wanted = used.checked_add(bytes).filter(|w| *w <= self.max)?;
            match self.used.compare_exchange_weak(
                used,
                wanted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.gauge.set(wanted as f64);
                    return Some(Reservation {
                        budget: self.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

impl Reservation {
    /// Accounts for memory already in use beyond the estimate reserved (a reply larger
    /// than expected); may take the total past the budget, which then refuses new work.
    pub(crate) fn grow_to(&mut self, bytes: usize) {
        if bytes > self.bytes {
            let extra = bytes - self.bytes;
            let total = self.budget.used.fetch_add(extra, Ordering::Relaxed) + extra;
            self.budget.gauge.set(total as f64);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let left = self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed) - self.bytes;
        self.budget.gauge.set(left as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_budget_and_returns_on_drop() {
        let budget = MemoryBudget::new("test", 100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        let mut c = budget.try_reserve(10).unwrap();
        c.grow_to(70);
        assert_eq!(budget.used(), 110, "a grown reservation may overshoot");
        assert!(budget.try_reserve(1).is_none());
        drop((b, c));
        assert_eq!(budget.used(), 0);
    }
}
