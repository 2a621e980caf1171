//! The amplification attack: connections that never read, each pipelining hundreds of
//! `history` requests for pages of 15 KB messages. Each request costs a few dozen bytes
//! to send and megabytes to answer; the server must not hold those answers without bound.

use std::time::{Duration, Instant};

use chat_testkit::{binary, ChatdProcess, Usage, WsClient};
use serde_json::json;

use crate::helpers::{assert_alive, group};

const ATTACKERS: usize = 8;
const REQUESTS_EACH: usize = 256;
const MESSAGES: usize = 1000;
const BODY_BYTES: usize = 15 * 1024;
/// The bound the issue set: the attack once took chatd from 26 MB to 4 GB.
const PEAK_LIMIT_MIB: u64 = 600;
/// "Back near baseline" once the attackers are gone, in memory the process holds itself
/// (`Usage::held_kib`): the resident set also counts the database's pages once for each
/// read connection that mapped them (~16 MB of messages, seven times over).
const SETTLED_ABOVE_BASELINE_MIB: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_history_from_connections_that_never_read_stays_bounded() {
    let data = tempfile::tempdir().unwrap();
    // Rates off: the byte budgets alone must hold the line (rates only slow it further).
    let chatd = ChatdProcess::spawn(
        &binary("chatd"),
        data.path(),
        &["--limit-send", "off", "--limit-reads", "off"],
    )
    .await;
    let pid = chatd.process().pid();
    let chat = group(&chatd.http(), "alice", &["mallory".into()]).await;
    let mut alice = chatd.connect("alice", "phone").await;
    let body = "m".repeat(BODY_BYTES);
    for batch in 0..MESSAGES / 200 {
        for reply in alice
            .send_pipelined(&chat, &format!("b{batch}-"), 200, &body)
            .await
        {
            assert_eq!(reply["type"], "sent", "{reply}");
        }
    }
    let baseline = Usage::of(pid);

    let mut attackers = Vec::new();
    for device in 0..ATTACKERS {
        let mut attacker = WsClient::connect(chatd.addr, "mallory", Some(&format!("d{device}")))
            .await
            .unwrap();
        for i in 0..REQUESTS_EACH {
            attacker
                .send_json(json!({"type": "history", "id": format!("h{i}"), "chat_id": chat, "limit": 200}))
                .await;
        }
        attackers.push(attacker);
    }
    // While the attackers sit on their sockets, others are served.
    let mut peak_threads = 0;
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(6) {
        peak_threads = peak_threads.max(Usage::of(pid).threads);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut bob = chatd.connect("alice", "laptop").await;
    assert_alive(&mut bob).await;
    let metrics = chatd.metrics().await;
    assert!(
        metrics.contains(r#"chat_limit_hits_total{limit="connection_reply_budget"}"#),
        "the attack never reached the per-connection budget"
    );
    let during = Usage::of(pid);
    println!(
        "amplification: baseline {} MiB, peak {} MiB, {} threads at most",
        baseline.rss_mib(),
        during.peak_rss_mib(),
        peak_threads
    );
    assert!(
        during.peak_rss_mib() < PEAK_LIMIT_MIB,
        "peak RSS {} MiB (baseline {} MiB)",
        during.peak_rss_mib(),
        baseline.rss_mib()
    );
    assert!(
        peak_threads < 64,
        "{peak_threads} threads: reads are not bounded"
    );

    drop(attackers);
    let settled = Instant::now();
    let mut now = Usage::of(pid);
    while now.held_mib() > baseline.held_mib() + SETTLED_ABOVE_BASELINE_MIB
        && settled.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = Usage::of(pid);
    }
    println!(
        "amplification: {} MiB held ({} MiB resident) after the attackers left, {} MiB held before",
        now.held_mib(),
        now.rss_mib(),
        baseline.held_mib()
    );
    assert!(
        now.held_mib() <= baseline.held_mib() + SETTLED_ABOVE_BASELINE_MIB,
        "{} MiB held after the attack, {} MiB before",
        now.held_mib(),
        baseline.held_mib()
    );
    assert_alive(&mut alice).await;
}
