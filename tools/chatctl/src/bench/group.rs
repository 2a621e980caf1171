//! `group`: one group of M members; `senders` of them post (open loop at `--rate`, 100/s by
//! default), and every member receives every message: fan-out of M − 1 frames a message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::json;
use tokio::sync::watch;

use super::direct::Sender;
use super::receivers;
use super::report::{Latency, Report};
use super::stats::{progress, Stats};
use super::{run_id, BenchArgs};
use crate::client::{connect, create_chat, http, source_address, Keys};

const GRACE: Duration = Duration::from_secs(2);

pub(super) async fn run(
    args: &BenchArgs,
    members: usize,
    senders: usize,
) -> anyhow::Result<Report> {
    let keys = Keys::new(&args.jwt_secret)?;
    let id = run_id();
    let url = |i: usize| args.url[i % args.url.len()].clone();
    let names: Vec<String> = (0..members).map(|i| format!("b{id}-m{i}")).collect();
    let chat = create_chat(
        &http(),
        &url(0),
        &keys.token(&names[0]),
        json!({"kind": "group", "title": "bench", "members": names[1..]}),
    )
    .await?;

    let stats = Arc::new(super::stats_for(args)?);
    let (stop, stopped) = watch::channel(false);
    let mut listening = Vec::new();
    for (i, name) in names.iter().enumerate().skip(senders) {
        let ws = connect(
            &url(i),
            &keys.token(name),
            "bench",
            Some(source_address(i, args.sources)),
        )
        .await?;
        listening.push(ws);
    }
    let receivers = receivers::spawn(listening, &stats, &stopped);
    let mut sockets = Vec::new();
    for (i, name) in names.iter().enumerate().take(senders) {
        let ws = connect(
            &url(i),
            &keys.token(name),
            "bench-sender",
            Some(source_address(i, args.sources)),
        )
        .await?;
        sockets.push(ws);
    }
    // Members learn their large groups in the background after connecting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let deadline = started + args.duration;
    let start_us = stats.now_us();
    stats.sending_starts(start_us);
    let rate = args.rate.unwrap_or(100).max(1);
    let every = Duration::from_secs_f64(senders as f64 / rate as f64);
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let sender = Sender {
            ws,
            chat: chat.clone(),
            stats: stats.clone(),
            deadline,
            next_id: 0,
            outstanding: 0,
        };
        tasks.push(tokio::spawn(
            sender
                .open_loop(start_us, every, i as u64, senders as u64)
                .boxed(),
        ));
    }
    let bar = progress(&stats, args.json);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(GRACE).await;
    let _ = stop.send(true);
    for r in receivers {
        let _ = r.await;
    }
    if let Some(bar) = bar {
        bar.abort();
        eprintln!();
    }
    let secs = elapsed.as_secs_f64();
    let acked = Stats::count(&stats.acked);
    let received = Stats::count(&stats.received);
    let expected = acked * (members - senders) as u64;
    super::write_timeline(args, &stats)?;
    Ok(Report {
        scenario: "group".into(),
        duration_s: secs,
        connections: members,
        sent: Stats::count(&stats.sent),
        acked,
        received,
        errors: Stats::count(&stats.errors),
        throughput_msgs_per_s: acked as f64 / secs,
        delivered_frames_per_s: received as f64 / secs,
        latency: Latency::of(&stats.latency.snapshot()),
        extra: json!({"members": members, "senders": senders, "rate": rate,
                      "expected_frames": expected, "delivered_fraction": received as f64 / expected.max(1) as f64,
                      "send_lag": Latency::of(&stats.send_lag.snapshot())}),
    })
}
