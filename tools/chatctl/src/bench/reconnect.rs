//! `reconnect`: N clients connect and sync, then all drop at once and reconnect + sync
//! together; reports the time until the last one is synced again.

use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::report::{Latency, Report};
use super::stats::histogram;
use super::{run_id, BenchArgs};
use crate::client::{connect, next_json, source_address, Keys, Ws};

async fn connect_and_sync(
    url: &str,
    token: &str,
    source: std::net::Ipv4Addr,
) -> anyhow::Result<Ws> {
    let mut ws = connect(url, token, "reconnect", Some(source)).await?;
    ws.send(Message::Text(
        json!({"type": "sync", "id": "s", "cursors": {}})
            .to_string()
            .into(),
    ))
    .await?;
    while let Some(frame) = next_json(&mut ws).await? {
        if frame["type"] == "synced" {
            return Ok(ws);
        }
    }
    anyhow::bail!("closed before synced")
}

pub(super) async fn run(args: &BenchArgs, clients: usize) -> anyhow::Result<Report> {
    let keys = Keys::new(&args.jwt_secret)?;
    let id = run_id();
    let targets: Vec<(String, String, std::net::Ipv4Addr)> = (0..clients)
        .map(|i| {
            (
                args.url[i % args.url.len()].clone(),
                keys.token(&format!("b{id}-c{i}")),
                source_address(i, args.sources),
            )
        })
        .collect();
    let first: Vec<Ws> = stream::iter(targets.iter())
        .map(|(url, token, source)| connect_and_sync(url, token, *source))
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    // Everyone drops at once…
    drop(first);
    let started = Instant::now();
    // …and comes back at once.
    let results: Vec<anyhow::Result<u64>> = stream::iter(targets.iter())
        .map(|(url, token, source)| async move {
            let t = Instant::now();
            connect_and_sync(url, token, *source)
                .await
                .map(|_ws| t.elapsed().as_micros() as u64)
        })
        .buffer_unordered(clients.max(1))
        .collect()
        .await;
    let total = started.elapsed();
    let mut latency = histogram();
    let mut errors = 0;
    for r in &results {
        match r {
            Ok(us) => {
                let _ = latency.record((*us).max(1));
            }
            Err(_) => errors += 1,
        }
    }
    Ok(Report {
        scenario: "reconnect".into(),
        duration_s: total.as_secs_f64(),
        connections: clients,
        sent: 0,
        acked: 0,
        received: 0,
        errors,
        throughput_msgs_per_s: 0.0,
        delivered_frames_per_s: 0.0,
        latency: Latency::of(&latency),
        extra: json!({"all_synced_seconds": total.as_secs_f64(), "latency_is": "reconnect + sync per client"}),
    })
}
