//! What a running scenario counts: messages sent, acked, received, errors, and latency
//! histograms (one per receiver task, merged at the end), how late the open loop's own
//! sends went out, and, when asked for, a latency timeline; plus a progress bar.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use super::timeline::Timeline;

pub(crate) struct Stats {
    pub(crate) started: Instant,
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Send→receive latency, from the receivers.
    pub(crate) latency: MergedHistogram,
    /// Open loop: how long after its scheduled time each send was written to its socket.
    /// That part of a message's latency is the generator's (a CPU it did not get, a
    /// coarse timer), not the server's.
    pub(crate) send_lag: MergedHistogram,
    timeline: Option<Timeline>,
}

/// Microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

impl Stats {
    /// Stats, with a latency timeline when one is given (see `timeline`).
    pub(crate) fn new(timeline: Option<Timeline>) -> Self {
        Stats {
            started: Instant::now(),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: MergedHistogram::new(),
            send_lag: MergedHistogram::new(),
            timeline,
        }
    }

    /// Microseconds since the run started: the clock message bodies carry.
    pub(crate) fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub(crate) fn timeline(&self) -> Option<&Timeline> {
        self.timeline.as_ref()
    }

    /// The first send goes out at `at_us`: the timeline's windows count from there.
    pub(crate) fn sending_starts(&self, at_us: u64) {
        if let Some(timeline) = &self.timeline {
            timeline.start_at(at_us);
        }
    }

    pub(crate) fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A histogram every task records into a local copy of, merged here when the task ends
/// (a shared one would be a contended lock per message).
pub(crate) struct MergedHistogram(Mutex<Histogram<u64>>);

impl MergedHistogram {
    fn new() -> Self {
        MergedHistogram(Mutex::new(histogram()))
    }

    pub(crate) fn merge(&self, local: &Histogram<u64>) {
        self.0
            .lock()
            .expect("stats lock")
            .add(local)
            .expect("same bounds");
    }

    pub(crate) fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().expect("stats lock").clone()
    }
}

/// A spinner with live counts, on stderr, until dropped.
pub(crate) fn progress(
    stats: &std::sync::Arc<Stats>,
    quiet: bool,
) -> Option<tokio::task::JoinHandle<()>> {
    if quiet {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("template"));
    let stats = stats.clone();
    Some(tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let received = Stats::count(&stats.received);
            bar.set_message(format!(
                "sent {} acked {} received {} ({}/s) errors {}",
                Stats::count(&stats.sent),
                Stats::count(&stats.acked),
                received,
                (received - last) * 2,
                Stats::count(&stats.errors)
            ));
            last = received;
            bar.tick();
        }
    }))
}
