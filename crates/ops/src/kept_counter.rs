//! Counters registered once and kept, for paths run for every message or frame.
//! `metrics::counter!` looks its key up in the recorder's registry on every call (hashing
//! the name and labels): on chatd's per-message paths that was ~2.5% of its instructions
//! (BENCHMARKS.md, "Is it the fsync?").

use std::sync::OnceLock;

use metrics::Counter;

/// A counter with at most one fixed label, registered on first use and kept.
pub struct KeptCounter {
    name: &'static str,
    label: Option<(&'static str, &'static str)>,
    counter: OnceLock<Counter>,
}

impl KeptCounter {
    pub const fn new(name: &'static str) -> Self {
        KeptCounter {
            name,
            label: None,
            counter: OnceLock::new(),
        }
    }

    pub const fn labelled(name: &'static str, key: &'static str, value: &'static str) -> Self {
        KeptCounter {
            name,
            label: Some((key, value)),
            counter: OnceLock::new(),
        }
    }

    pub fn increment(&self, by: u64) {
        self.counter
            .get_or_init(|| {
                // Installed first, so the kept handle is the exporter's and not a no-op.
                crate::metrics::handle();
                match self.label {
                    Some((key, value)) => metrics::counter!(self.name, key => value),
                    None => metrics::counter!(self.name),
                }
            })
            .increment(by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value a counter series shows on `/metrics`.
    fn shown(series: &str) -> u64 {
        crate::metrics::render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn kept_counters_count_where_the_exporter_shows_them() {
        static PLAIN: KeptCounter = KeptCounter::new("chat_test_kept_total");
        static SENDS: KeptCounter =
            KeptCounter::labelled("chat_test_kept_by_type_total", "type", "send");
        PLAIN.increment(1);
        PLAIN.increment(2);
        SENDS.increment(5);
        // The same series as the macro's: a kept handle and `counter!` add up together.
        metrics::counter!("chat_test_kept_total").increment(4);
        assert_eq!(shown("chat_test_kept_total "), 7);
        assert_eq!(shown("chat_test_kept_by_type_total{type=\"send\"} "), 5);
    }
}
