//! `chatctl limits relay`, the yardstick the latency benchmarks compare chatd with: `bench
//! direct` runs against it, and with `--durable-dir` every acked message is in its log.

mod common;

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts a relay on a free port; returns it and its URL (read from its first line).
async fn start_relay(extra: &[&str]) -> (Child, String) {
    let mut relay = Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .args(["limits", "relay", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().expect("a first line");
    let url = first
        .strip_prefix("relay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (relay, url)
}

async fn bench_direct(url: &str) -> serde_json::Value {
    common::bench_report(url, &["direct", "--pairs", "4", "--inflight", "4"], &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_relay_logs_every_message_it_acks() {
    let dir = tempfile::tempdir().unwrap();
    let (mut relay, url) = start_relay(&["--durable-dir", dir.path().to_str().unwrap()]).await;

    let report = bench_direct(&url).await;
    let acked = report["acked"].as_u64().unwrap();
    assert!(acked > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["received"], report["acked"], "{report}");

    relay.kill().await.unwrap();
    let log = std::fs::read(dir.path().join("relay.log")).unwrap();
    assert_eq!(log.len(), 64 * 1024 * 1024, "written in place, never grown");
    // The run writes far less than the log holds, so nothing was written over.
    let logged = log
        .split(|&b| b == b'\n')
        .filter_map(|record| serde_json::from_slice::<serde_json::Value>(record).ok())
        .filter(|record| record["type"] == "msg")
        .count() as u64;
    assert!(
        logged >= acked,
        "{logged} messages logged, {acked} acked: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_relay_relays() {
    let (mut relay, url) = start_relay(&[]).await;
    let report = bench_direct(&url).await;
    assert!(report["acked"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["received"], report["acked"], "{report}");
    relay.kill().await.unwrap();
}
