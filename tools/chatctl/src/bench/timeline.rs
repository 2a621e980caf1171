//! Latency over the course of a run, for telling a tail made of a few stalls from one
//! spread evenly over the run: per 10 ms window of *scheduled* send time, how many
//! messages were sent then and the worst latency among them.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const WINDOW_US: u64 = 10_000;
/// Windows kept beyond the run's duration, for the set-up before the first send.
const SETUP_ALLOWANCE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Window {
    messages: AtomicU64,
    worst_us: AtomicU64,
}

pub(crate) struct Timeline {
    windows: Vec<Window>,
}

impl Timeline {
    /// Enough windows for a run of `duration` plus its set-up; later messages count in
    /// the last window.
    pub(crate) fn new(duration: Duration) -> Self {
        let span = (duration + SETUP_ALLOWANCE).as_micros() as u64;
        Timeline {
            windows: (0..span / WINDOW_US + 1)
                .map(|_| Window::default())
                .collect(),
        }
    }

    pub(crate) fn observe(&self, sent_at_us: u64, latency_us: u64) {
        let index = ((sent_at_us / WINDOW_US) as usize).min(self.windows.len() - 1);
        let window = &self.windows[index];
        window.messages.fetch_add(1, Ordering::Relaxed);
        window.worst_us.fetch_max(latency_us, Ordering::Relaxed);
    }

    /// CSV: `ms` (window start, from the first window with a message), `messages`,
    /// `worst_us`; windows without messages inside the run are written with zeros.
    pub(crate) fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let counts: Vec<(u64, u64)> = self
            .windows
            .iter()
            .map(|w| {
                (
                    w.messages.load(Ordering::Relaxed),
                    w.worst_us.load(Ordering::Relaxed),
                )
            })
            .collect();
        let first = counts.iter().position(|(n, _)| *n > 0).unwrap_or(0);
        let last = counts.iter().rposition(|(n, _)| *n > 0).unwrap_or(0);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(out, "ms,messages,worst_us")?;
        for (i, (messages, worst)) in counts.iter().enumerate().take(last + 1).skip(first) {
            let ms = (i - first) as u64 * WINDOW_US / 1000;
            writeln!(out, "{ms},{messages},{worst}")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_counts_and_the_worst_latency_from_the_first_message_on() {
        let timeline = Timeline::new(Duration::from_secs(1));
        timeline.observe(25_000, 300);
        timeline.observe(29_999, 900);
        timeline.observe(45_000, 50);
        let path = std::env::temp_dir().join(format!("timeline-{}.csv", std::process::id()));
        timeline.write_csv(&path).unwrap();
        let csv = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(csv, "ms,messages,worst_us\n0,2,900\n10,0,0\n20,1,50\n");
    }
}
