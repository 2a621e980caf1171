//! The result of a scenario: a human summary and a JSON form for machines.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub samples: u64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        Latency {
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            samples: h.len(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub duration_s: f64,
    pub connections: usize,
    pub sent: u64,
    pub acked: u64,
    pub received: u64,
    pub errors: u64,
    /// Messages acked per second.
    pub throughput_msgs_per_s: f64,
    /// Message frames received per second, over every receiver.
    pub delivered_frames_per_s: f64,
    pub latency: Latency,
    /// Scenario-specific figures.
    pub extra: serde_json::Value,
}

impl Report {
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario        {}", self.scenario);
        let _ = writeln!(
            out,
            "duration        {:.1} s, {} connections",
            self.duration_s, self.connections
        );
        let _ = writeln!(
            out,
            "sent / acked    {} / {} ({:.0} msgs/s)",
            self.sent, self.acked, self.throughput_msgs_per_s
        );
        let _ = writeln!(
            out,
            "received        {} ({:.0} frames/s)",
            self.received, self.delivered_frames_per_s
        );
        let _ = writeln!(out, "errors          {}", self.errors);
        let l = &self.latency;
        let ms = |us: u64| us as f64 / 1000.0;
        let _ =
            writeln!(
            out,
            "latency (ms)    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
            ms(l.p50_us), ms(l.p90_us), ms(l.p99_us), ms(l.p999_us), ms(l.max_us), l.samples
        );
        if !self.extra.is_null() {
            let _ = writeln!(out, "details         {}", self.extra);
        }
        out
    }
}
