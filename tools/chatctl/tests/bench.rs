//! `chatctl bench` against a real chatd process: the JSON report carries throughput and
//! latency percentiles, and every acked message was received.

mod common;

use chat_testkit::{binary, ChatdProcess};

async fn bench(server: &ChatdProcess, scenario_args: &[&str]) -> serde_json::Value {
    let url = format!("http://{}", server.addr);
    common::bench_report(&url, scenario_args, &["--sources", "4"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_bench_reports_throughput_and_percentiles() {
    let data = tempfile::tempdir().unwrap();
    let server = ChatdProcess::spawn(
        &binary("chatd"),
        data.path(),
        &["--send-rate", "1000000", "--send-burst", "1000000"],
    )
    .await;

    let closed = bench(&server, &["direct", "--pairs", "4", "--inflight", "4"]).await;
    assert_eq!(closed["scenario"], "direct");
    assert!(
        closed["throughput_msgs_per_s"].as_f64().unwrap() > 0.0,
        "{closed}"
    );
    assert_eq!(closed["errors"], 0);
    assert_eq!(
        closed["received"], closed["acked"],
        "every acked message reached its receiver: {closed}"
    );
    let latency = &closed["latency"];
    for p in ["p50_us", "p99_us", "p999_us"] {
        assert!(latency[p].as_u64().unwrap() > 0, "{p}: {latency}");
    }
    assert!(latency["p50_us"].as_u64() <= latency["p99_us"].as_u64());

    let timeline = data.path().join("timeline.csv");
    let open = bench(
        &server,
        &[
            "direct",
            "--pairs",
            "4",
            "--rate",
            "200",
            "--timeline",
            timeline.to_str().unwrap(),
        ],
    )
    .await;
    let sent = open["sent"].as_u64().unwrap();
    assert!(
        (150..=250).contains(&sent),
        "about 200 msgs in 1 s at 200/s: {open}"
    );
    assert_eq!(open["extra"]["mode"], "open");
    let lag = &open["extra"]["send_lag"];
    assert_eq!(
        lag["samples"], open["sent"],
        "every open-loop send's lag is counted: {open}"
    );
    assert!(
        lag["p99_us"].as_u64().unwrap() <= open["latency"]["max_us"].as_u64().unwrap(),
        "a send goes out before its message arrives: {open}"
    );
    assert_timeline_covers(&timeline, &open);

    let group = bench(&server, &["group", "--members", "20", "--rate", "50"]).await;
    assert_eq!(group["extra"]["delivered_fraction"], 1.0, "{group}");
    assert_eq!(
        group["extra"]["send_lag"]["samples"], group["sent"],
        "{group}"
    );
    server.kill().await;
}

/// The timeline counts every received message once, by scheduled send time: 4 senders at
/// 200 msgs/s in total are due every 5 ms from the first send on, so every 10 ms window but
/// the run's last holds exactly two. Its worst latency is the histogram's maximum.
fn assert_timeline_covers(path: &std::path::Path, report: &serde_json::Value) {
    let csv = std::fs::read_to_string(path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("ms,messages,worst_us"));
    let windows: Vec<(u64, u64, u64)> = lines
        .map(|line| {
            let mut fields = line.split(',').map(|f| f.parse::<u64>().unwrap());
            let mut next = || fields.next().unwrap();
            (next(), next(), next())
        })
        .collect();
    let counted: u64 = windows.iter().map(|w| w.1).sum();
    assert_eq!(counted, report["received"].as_u64().unwrap(), "{csv}");
    assert!(
        (90..=110).contains(&windows.len()),
        "{} windows",
        windows.len()
    );
    for (i, &(ms, messages, _)) in windows.iter().enumerate() {
        assert_eq!(ms, 10 * i as u64, "{csv}");
        if i + 1 < windows.len() {
            assert_eq!(messages, 2, "window {i}: {csv}");
        }
    }
    let worst = windows.iter().map(|w| w.2).max().unwrap();
    let max_us = report["latency"]["max_us"].as_u64().unwrap();
    // The histogram keeps 3 significant digits.
    assert!(
        worst.abs_diff(max_us) <= max_us / 1000 + 1,
        "{worst} vs {max_us}"
    );
}
