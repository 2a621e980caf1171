//! Latency over the course of a run, for telling a tail made of a few stalls from one
//! spread evenly over the run: per 10 ms window of send time (from the first send on), how
//! many messages were received and the worst latency among them. Each receiver counts
//! into its own windows and merges them at the end, as it does its histogram: shared
//! counters would be one more contended write per frame in a fan-out run.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const WINDOW_US: u64 = 10_000;
/// Windows kept past the run's duration, for messages still arriving after it.
const AFTER_RUN: Duration = Duration::from_secs(10);
/// A timeline covers at most a day; later messages count in its last window.
const MOST_WINDOWS: u64 = 24 * 3600 * 1_000_000 / WINDOW_US;

/// 8 bytes, kept by every receiver for every window of the run (1,000 group receivers
/// hold ~50 MB for a 60 s run).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Window {
    messages: u32,
    worst_us: u32,
}

pub(crate) struct Timeline {
    /// The first send's time (µs since the run's clock started): window 0 starts there.
    origin_us: AtomicU64,
    windows: usize,
    merged: Mutex<Vec<Window>>,
    /// Opened before the run, so a bad path fails before the load rather than after it.
    out: Mutex<Option<std::fs::File>>,
}

impl Timeline {
    /// A timeline for a run of `duration`, to be written to `out`.
    pub(crate) fn new(duration: Duration, out: std::fs::File) -> Self {
        let span_us = duration.saturating_add(AFTER_RUN).as_micros();
        let windows = (span_us / WINDOW_US as u128).min(MOST_WINDOWS as u128) as usize + 1;
        Timeline {
            origin_us: AtomicU64::new(0),
            windows,
            merged: Mutex::new(Vec::new()),
            out: Mutex::new(Some(out)),
        }
    }

    /// Sets where window 0 starts; call before the first send.
    pub(crate) fn start_at(&self, origin_us: u64) {
        self.origin_us.store(origin_us, Ordering::Relaxed);
    }

    /// One receiver's windows, to count into without sharing.
    pub(crate) fn local(&self) -> LocalTimeline {
        LocalTimeline {
            windows: Vec::new(),
        }
    }

    pub(crate) fn observe(&self, local: &mut LocalTimeline, sent_at_us: u64, latency_us: u64) {
        let since_origin = sent_at_us.saturating_sub(self.origin_us.load(Ordering::Relaxed));
        let index = ((since_origin / WINDOW_US) as usize).min(self.windows - 1);
        if local.windows.len() <= index {
            local.windows.resize(index + 1, Window::default());
        }
        let window = &mut local.windows[index];
        window.messages = window.messages.saturating_add(1);
        let latency_us = u32::try_from(latency_us).unwrap_or(u32::MAX);
        window.worst_us = window.worst_us.max(latency_us);
    }

    pub(crate) fn merge(&self, local: &LocalTimeline) {
        let mut merged = self.merged.lock().expect("timeline lock");
        if merged.len() < local.windows.len() {
            merged.resize(local.windows.len(), Window::default());
        }
        for (into, from) in merged.iter_mut().zip(&local.windows) {
            into.messages = into.messages.saturating_add(from.messages);
            into.worst_us = into.worst_us.max(from.worst_us);
        }
    }

    /// Writes the CSV: `ms` (the window's start from the first send), `messages`,
    /// `worst_us`; every window up to the last with a message, empty ones as zeros. Only
    /// the header when nothing was received.
    pub(crate) fn write(&self) -> std::io::Result<()> {
        let Some(file) = self.out.lock().expect("timeline lock").take() else {
            return Ok(());
        };
        let merged = self.merged.lock().expect("timeline lock");
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "ms,messages,worst_us")?;
        let last = merged.iter().rposition(|w| w.messages > 0);
        for (i, window) in merged.iter().enumerate().take(last.map_or(0, |l| l + 1)) {
            let ms = i as u64 * WINDOW_US / 1000;
            writeln!(out, "{ms},{},{}", window.messages, window.worst_us)?;
        }
        out.flush()
    }
}

/// A receiver's own windows (see `Timeline::local`).
pub(crate) struct LocalTimeline {
    windows: Vec<Window>,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A timeline for a run of `duration`, written to `timeline.csv` in `dir`.
    fn timeline_in(dir: &tempfile::TempDir, duration: Duration) -> (Timeline, PathBuf) {
        let path = dir.path().join("timeline.csv");
        let out = std::fs::File::create(&path).unwrap();
        (Timeline::new(duration, out), path)
    }

    fn written(timeline: &Timeline, path: &std::path::Path) -> String {
        timeline.write().unwrap();
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn windows_count_from_the_first_send_and_merge_receivers_by_count_and_worst() {
        let dir = tempfile::tempdir().unwrap();
        let (timeline, path) = timeline_in(&dir, Duration::from_secs(1));
        timeline.start_at(5_000);
        let (mut one, mut other) = (timeline.local(), timeline.local());
        timeline.observe(&mut one, 5_000, 300);
        timeline.observe(&mut other, 14_999, 900);
        timeline.observe(&mut one, 25_000, 50);
        timeline.merge(&one);
        timeline.merge(&other);
        assert_eq!(
            written(&timeline, &path),
            "ms,messages,worst_us\n0,2,900\n10,0,0\n20,1,50\n"
        );
    }

    #[test]
    fn late_messages_count_in_the_last_window_and_an_empty_run_writes_only_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let (timeline, _) = timeline_in(&dir, Duration::from_millis(20));
        let mut local = timeline.local();
        timeline.observe(&mut local, 3_600_000_000, 7);
        assert_eq!(local.windows.len(), timeline.windows);
        assert_eq!(local.windows.last().unwrap().messages, 1);

        let (empty, path) = timeline_in(&dir, Duration::MAX);
        assert_eq!(empty.windows as u64, MOST_WINDOWS + 1);
        assert_eq!(written(&empty, &path), "ms,messages,worst_us\n");
    }
}
