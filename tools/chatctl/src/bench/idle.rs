//! `idle`: hold N connections open and, given the server's pid, report its resident memory
//! per connection (the growth of VmRSS divided by N).

use std::time::Instant;

use serde_json::json;

use super::report::{Latency, Report};
use super::stats::histogram;
use super::{run_id, BenchArgs};
use crate::client::{connect, source_address, Keys};

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

pub(super) async fn run(
    args: &BenchArgs,
    connections: usize,
    pid: Option<u32>,
) -> anyhow::Result<Report> {
    let keys = Keys::new(&args.jwt_secret)?;
    let id = run_id();
    let before = pid.map(rss_kib).transpose()?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(connections);
    let mut connect_latency = histogram();
    for i in 0..connections {
        let url = &args.url[i % args.url.len()];
        let t = Instant::now();
        held.push(
            connect(
                url,
                &keys.token(&format!("b{id}-i{i}")),
                "idle",
                Some(source_address(i, args.sources)),
            )
            .await?,
        );
        let _ = connect_latency.record(t.elapsed().as_micros().max(1) as u64);
        if !args.json && (i + 1) % 10_000 == 0 {
            eprintln!("{} connections", i + 1);
        }
    }
    let setup = started.elapsed();
    tokio::time::sleep(args.duration).await;
    let after = pid.map(rss_kib).transpose()?;
    let per_connection = match (before, after) {
        (Some(b), Some(a)) => {
            Some(((a.saturating_sub(b)) as f64 * 1024.0 / connections as f64).round())
        }
        _ => None,
    };
    drop(held);
    Ok(Report {
        scenario: "idle".into(),
        duration_s: args.duration.as_secs_f64(),
        connections,
        sent: 0,
        acked: 0,
        received: 0,
        errors: 0,
        throughput_msgs_per_s: 0.0,
        delivered_frames_per_s: 0.0,
        latency: Latency::of(&connect_latency),
        extra: json!({"connect_seconds": setup.as_secs_f64(), "server_rss_before_kib": before, "server_rss_after_kib": after,
                      "server_bytes_per_connection": per_connection, "latency_is": "connect + hello"}),
    })
}
