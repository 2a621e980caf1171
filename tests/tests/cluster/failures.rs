//! Losing a process: a gateway, a chat-service instance mid-storm, Redis mid-storm.
//! Clients do what the protocol asks of them: retry unacked sends with the same
//! client_msg_id, reconnect elsewhere, and sync.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::{token, Cluster, WsClient, LEASE_TTL};
use serde_json::{json, Map, Value};

const SENDERS: usize = 4;
const PER_SENDER: usize = 100;
/// Pause between one sender's messages, so the storm outlasts the failure's effects.
const PACE: Duration = Duration::from_millis(10);
const PATIENCE: Duration = Duration::from_secs(30);

fn is_msg_of(chat: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| f["type"] == "msg" && f["chat_id"] == chat
}

/// Progress of a storm, shared by its senders.
#[derive(Default)]
struct Progress {
    acked: AtomicUsize,
    /// Retried `unavailable` answers and reconnects (the gateways ride out most owner
    /// changes, so a failure may cause none).
    disruptions: AtomicUsize,
}

/// One sender: sends its messages one after another, retrying each until acked and
/// reconnecting (to any gateway) when its connection dies. Returns cmid -> (seq, msg_id).
async fn sender(
    gateways: Vec<SocketAddr>,
    name: String,
    chat: String,
    progress: Arc<Progress>,
) -> HashMap<String, (u64, String)> {
    let mut acks = HashMap::new();
    let mut attempt = 0usize;
    let mut client = WsClient::connect(gateways[0], &name, Some("phone"))
        .await
        .unwrap();
    for i in 0..PER_SENDER {
        tokio::time::sleep(PACE).await;
        let cmid = format!("{name}-{i}");
        loop {
            let retries_before = client.retries;
            let sent = client.send_retrying(&chat, &cmid, "storm", PATIENCE).await;
            progress.disruptions.fetch_add(
                (client.retries - retries_before) as usize,
                Ordering::Relaxed,
            );
            if let Some(sent) = sent {
                acks.insert(
                    cmid.clone(),
                    (
                        sent["seq"].as_u64().unwrap(),
                        sent["msg_id"].as_str().unwrap().to_owned(),
                    ),
                );
                progress.acked.fetch_add(1, Ordering::Relaxed);
                break;
            }
            progress.disruptions.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            let addr = gateways[attempt % gateways.len()];
            client = loop {
                if let Ok(c) = WsClient::connect(addr, &name, Some("phone")).await {
                    break c;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
        }
    }
    acks
}

type Senders = Vec<tokio::task::JoinHandle<HashMap<String, (u64, String)>>>;

/// Starts the storm: `SENDERS` senders into one group, spread over the gateways, and
/// returns once a quarter of its messages are acked, so a failure injected next lands
/// in the middle of it.
async fn storm(cluster: &Cluster, chat: &str) -> (Senders, Arc<Progress>) {
    let gateways: Vec<SocketAddr> = (0..cluster.gateways.len())
        .map(|i| cluster.gateway_addr(i))
        .collect();
    let progress = Arc::new(Progress::default());
    let senders = (0..SENDERS)
        .map(|s| {
            let mut order = gateways.clone();
            order.rotate_left(s % gateways.len());
            tokio::spawn(sender(
                order,
                format!("sender{s}"),
                chat.to_owned(),
                progress.clone(),
            ))
        })
        .collect();
    while progress.acked.load(Ordering::Relaxed) < SENDERS * PER_SENDER / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (senders, progress)
}

/// Waits for the storm's end. `acked_at_failure` (acks counted once the failure was
/// done) proves the failure landed in the middle of it.
async fn finish(
    senders: Senders,
    progress: &Progress,
    acked_at_failure: usize,
) -> HashMap<String, (u64, String)> {
    assert!(
        acked_at_failure < SENDERS * PER_SENDER,
        "the failure came before the storm's end"
    );
    let mut acks = HashMap::new();
    for s in senders {
        acks.extend(s.await.unwrap());
    }
    println!(
        "{} of {} acked when the failure was done; {} disruptions seen by clients",
        acked_at_failure,
        SENDERS * PER_SENDER,
        progress.disruptions.load(Ordering::Relaxed)
    );
    acks
}

/// After the storm: every acked message is stored once, with its acked seq and msg_id,
/// in one gap-free order, and nothing else is.
async fn assert_converged(cluster: &Cluster, chat: &str, acks: &HashMap<String, (u64, String)>) {
    assert_eq!(
        acks.len(),
        SENDERS * PER_SENDER,
        "every send was eventually acked"
    );
    let mut reader = cluster.connect(0, "reader", "audit").await;
    let (messages, _) = reader.sync_all(Map::new(), 1000).await;
    assert!(
        messages.iter().all(|m| m["chat_id"] == chat),
        "the reader is in the storm's chat only"
    );
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=acks.len() as u64).collect::<Vec<_>>(),
        "one gap-free order"
    );
    let mut seen = HashSet::new();
    for m in &messages {
        let cmid = m["client_msg_id"].as_str().unwrap();
        assert!(seen.insert(cmid.to_owned()), "{cmid} stored twice");
        let (seq, msg_id) = &acks[cmid];
        assert_eq!(
            (m["seq"].as_u64().unwrap(), m["msg_id"].as_str().unwrap()),
            (*seq, msg_id.as_str()),
            "{cmid}"
        );
    }
    // Each sender's messages are in the order it sent them.
    for s in 0..SENDERS {
        let own: Vec<u64> = (0..PER_SENDER)
            .map(|i| acks[&format!("sender{s}-{i}")].0)
            .collect();
        assert!(own.windows(2).all(|w| w[0] < w[1]), "sender{s}: {own:?}");
    }
}

async fn storm_group(cluster: &Cluster) -> String {
    let members: Vec<String> = (0..SENDERS)
        .map(|s| format!("sender{s}"))
        .chain(["reader".to_owned()])
        .collect();
    cluster
        .http(0)
        .create_chat(
            &token("owner", None),
            json!({"kind": "group", "title": "storm", "members": members}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_chat_service_mid_storm_loses_no_acked_message() {
    let mut cluster = Cluster::start(2, 2).await;
    let chat = storm_group(&cluster).await;
    let owner = cluster.owner_of(&chat).await;
    let (senders, progress) = storm(&cluster, &chat).await;
    cluster.kill_chat_service(owner).await;
    let acked_at_kill = progress.acked.load(Ordering::Relaxed);
    let acks = finish(senders, &progress, acked_at_kill).await;
    assert_ne!(
        cluster.owner_of(&chat).await,
        owner,
        "the survivor took the chat over"
    );
    assert_converged(&cluster, &chat, &acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_redis_mid_storm_loses_nothing_and_fan_out_resumes() {
    let mut cluster = Cluster::start(2, 2).await;
    let chat = storm_group(&cluster).await;
    let mut live_reader = cluster.connect(1, "reader", "live").await;
    let (senders, progress) = storm(&cluster, &chat).await;
    cluster.redis.restart().await;
    let acked_at_restart = progress.acked.load(Ordering::Relaxed);
    let acks = finish(senders, &progress, acked_at_restart).await;
    assert_converged(&cluster, &chat, &acks).await;

    // Events published while Redis was away are lost to live delivery: once its
    // subscription is back, the reader's gateway tells the reader to reconnect and sync.
    live_reader.wait_for(|f| f["type"] == "reconnect").await;
    let mut live_reader = cluster.connect(1, "reader", "live").await;
    let mut from_start = Map::new();
    from_start.insert(chat.clone(), json!(0));
    let (synced, _) = live_reader.sync_all(from_start, 1000).await;
    let seqs: HashSet<u64> = synced
        .iter()
        .filter(|f| is_msg_of(&chat)(f))
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert!(
        acks.values().all(|(seq, _)| seqs.contains(seq)),
        "the reader's sync recovers every acked message"
    );

    // Live fan-out works again by itself: the reader's gateway resubscribed.
    let mut sender = cluster.connect(0, "sender0", "after").await;
    let sent = sender
        .send_retrying(&chat, "after-restart", "still here", PATIENCE)
        .await
        .unwrap();
    let live = live_reader
        .wait_for(|f| is_msg_of(&chat)(f) && f["client_msg_id"] == "after-restart")
        .await;
    assert_eq!(live["seq"], sent["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_gateway_moves_its_clients_without_loss() {
    let mut cluster = Cluster::start(2, 2).await;
    let direct = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    let _bob = cluster.connect(1, "bob", "phone").await;
    let watched = alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    assert_eq!(watched["users"][0]["online"], true);

    cluster.kill_gateway(1).await;
    // The sweeper takes bob offline once gw-1's heartbeat expires.
    let offline = alice
        .wait_for(|f| f["type"] == "presence" && f["users"][0]["online"] == false)
        .await;
    assert_eq!(offline["users"][0]["user_id"], "bob");

    for i in 0..5 {
        alice
            .send_retrying(&direct, &format!("while-away-{i}"), "x", PATIENCE)
            .await
            .unwrap();
    }
    // Bob reconnects to the surviving gateway and syncs everything he missed.
    let mut bob = cluster.connect(0, "bob", "phone").await;
    let online = alice
        .wait_for(|f| f["type"] == "presence" && f["users"][0]["online"] == true)
        .await;
    assert_eq!(online["users"][0]["user_id"], "bob");
    let (messages, _) = bob.sync_all(Map::new(), 100).await;
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["client_msg_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..5)
            .map(|i| format!("while-away-{i}"))
            .collect::<Vec<_>>()
    );
    // And live delivery reaches him there.
    alice
        .send_retrying(&direct, "live-again", "x", PATIENCE)
        .await
        .unwrap();
    assert_eq!(
        bob.wait_for(is_msg_of(&direct)).await["client_msg_id"],
        "live-again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_services_starting_together_on_a_fresh_database_all_start() {
    let redis = chat_test_redis::RedisServer::start().await;
    let binary = chat_testkit::binary("chat-service");
    // Start-up races are rare per try (3 in 30 in the report); the store's own test
    // (crates/store/tests/concurrent_open.rs) lines the openers up exactly.
    for round in 0..20 {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().join("chat.db");
        let url = redis.url();
        let env = [
            ("CHAT_REDIS_URL", url.as_str()),
            ("CHAT_SQLITE_PATH", path.to_str().unwrap()),
            ("CHAT_INTERNAL_SECRET", chat_testkit::INTERNAL_SECRET),
            ("CHAT_LOG_FORMAT", "json"),
        ];
        let ids: Vec<String> = (0..3).map(|i| format!("start-{round}-{i}")).collect();
        let args: Vec<[&str; 6]> = ids
            .iter()
            .map(|id| {
                [
                    "--listen",
                    "127.0.0.1:0",
                    "--instance-id",
                    id,
                    "--partitions",
                    "8",
                ]
            })
            .collect();
        // Each waits for its "listening" line and panics if the process exits first (as
        // one did with "database is locked" before the store retried its setup).
        let started =
            futures_util::future::join_all(args.iter().map(|args| {
                chat_testkit::ServiceProcess::spawn(&binary, "chat-service", args, &env)
            }))
            .await;
        assert_eq!(started.len(), 3, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_chat_takes_sends_again_within_two_seconds() {
    let mut cluster = Cluster::start(1, 2).await;
    let chat = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    // A steady sender: one message every 20 ms until the owner dies.
    for i in 0..10 {
        alice.send_message(&chat, &format!("before-{i}"), "x").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let owner = cluster.owner_of(&chat).await;
    cluster.kill_chat_service(owner).await;
    let killed = std::time::Instant::now();
    // The first send after the kill, retried (same client_msg_id) as a client does: after
    // the `retry_after_ms` each `unavailable` carries, which must be there and short.
    let mut hints = Vec::new();
    let sent = loop {
        let reply = alice
            .request(json!({"type": "send", "chat_id": chat, "client_msg_id": "after-kill", "body": "x"}))
            .await;
        if reply["type"] == "sent" {
            break reply;
        }
        assert_eq!(reply["code"], "unavailable", "{reply}");
        let hint = reply["retry_after_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no hint: {reply}"));
        assert!(hint <= 2000, "hint {hint} ms");
        hints.push(hint);
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "never acked again"
        );
        tokio::time::sleep(Duration::from_millis(hint)).await;
    };
    let took = killed.elapsed();
    println!(
        "sends acked again {took:?} after the owner's kill (lease TTL {LEASE_TTL:?}; hints {hints:?} ms)"
    );
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    assert_eq!(sent["seq"], 11, "no gap, no duplicate");
}
