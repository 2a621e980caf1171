//! Owner changes a client should barely notice: a chat service stopped with SIGTERM hands
//! its chats over while a client keeps sending, and a Redis that lost its data finds the
//! same owners, presence and partition count again. Each test times the worst send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chat_testkit::{token, Cluster, WsClient, LEASE_TTL};
use redis::AsyncCommands;
use serde_json::{json, Value};

/// Pause between a steady sender's messages.
const PACE: Duration = Duration::from_millis(10);

/// What a steady sender saw.
#[derive(Default)]
struct Sends {
    /// Seqs of the acked messages, in sending order.
    seqs: Vec<u64>,
    /// Every answer that was not `sent`.
    refusals: Vec<Value>,
    /// The longest a message took from its first send to its ack, and when it was sent.
    worst: Duration,
    worst_sent_at: Option<Instant>,
    /// Times the gateway told the sender to reconnect (and sync).
    rejoins: usize,
}

/// Where a steady sender reconnects when its gateway tells it to: as the same device of
/// the same user.
struct Rejoin {
    gateway: SocketAddr,
    user: &'static str,
}

/// Sends to `chat` three pipelined messages at a time until `until` resolves, then `extra`
/// more rounds. A refused send is retried (same client_msg_id) after its hint, as clients
/// do; told to reconnect, the sender does so (when it may: `rejoin`) and sends the
/// unanswered ones again, their repeats answered like the originals.
async fn send_steadily(
    client: &mut WsClient,
    chat: &str,
    until: &mut tokio::task::JoinHandle<()>,
    extra: usize,
    rejoin: Option<Rejoin>,
) -> Sends {
    let mut sends = Sends::default();
    let mut finished = false;
    let mut left = extra;
    for i in 0.. {
        if !finished && until.is_finished() {
            finished = true;
        }
        if finished {
            if left == 0 {
                break;
            }
            left -= 1;
        }
        // Three sends at a time, pipelined: their seqs must follow the order they were
        // sent in, through any owner change.
        let first_sent = Instant::now();
        let rejoins_before = sends.rejoins;
        let cmids: Vec<String> = (0..3).map(|k| format!("m{i}-{k}")).collect();
        let mut requests = Vec::new();
        for cmid in &cmids {
            requests.push(send(client, chat, cmid).await);
        }
        for (request, cmid) in requests.into_iter().zip(&cmids) {
            // After a reconnect, what was sent on the old connection is sent again.
            let sent_as = (sends.rejoins == rejoins_before).then_some(request);
            let reply = acked(
                client,
                chat,
                cmid,
                sent_as,
                rejoin.as_ref(),
                &mut sends,
                first_sent,
            )
            .await;
            sends.seqs.push(reply["seq"].as_u64().unwrap());
        }
        let took = first_sent.elapsed();
        if took > sends.worst {
            sends.worst = took;
            sends.worst_sent_at = Some(first_sent);
        }
        tokio::time::sleep(PACE).await;
    }
    sends
}

/// Sends `cmid` to `chat`; returns the request's id.
async fn send(client: &mut WsClient, chat: &str, cmid: &str) -> String {
    let id = client.id();
    client
        .send_json(
            json!({"type": "send", "id": id, "chat_id": chat, "client_msg_id": cmid, "body": "x"}),
        )
        .await;
    id
}

/// The `sent` answer to `cmid`, whose send went out as `sent_as` on this connection (if it
/// did). A refusal is recorded and the send made again after its hint (for up to 15 s
/// from `first_sent`); told to reconnect
/// (or cut off), the sender reconnects as `rejoin` says and sends again: a repeat is
/// answered like the original.
async fn acked(
    client: &mut WsClient,
    chat: &str,
    cmid: &str,
    mut sent_as: Option<String>,
    rejoin: Option<&Rejoin>,
    sends: &mut Sends,
    first_sent: Instant,
) -> Value {
    loop {
        let id = match sent_as.take() {
            Some(id) => id,
            None => send(client, chat, cmid).await,
        };
        let reply = client
            .try_wait_for(Duration::from_secs(10), |f| {
                f["re"] == id.as_str() || f["type"] == "reconnect"
            })
            .await;
        match reply {
            Some(reply) if reply["type"] == "sent" => return reply,
            Some(reply) if reply["type"] != "reconnect" => {
                let wait = reply["retry_after_ms"].as_u64().unwrap_or(100);
                sends.refusals.push(reply);
                assert!(
                    first_sent.elapsed() < Duration::from_secs(15),
                    "never acked: {:?}",
                    sends.refusals
                );
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            _ => {
                let rejoin = rejoin.expect("told to reconnect, or cut off");
                *client = WsClient::connect(rejoin.gateway, rejoin.user, Some("phone"))
                    .await
                    .expect("reconnects");
                sends.rejoins += 1;
            }
        }
    }
}

/// A clean owner change: no error, no send slower than half a second, order kept.
fn assert_unnoticed(sends: &Sends) {
    assert!(
        sends.refusals.is_empty(),
        "no unavailable: {:?}",
        sends.refusals
    );
    assert!(
        sends.worst <= Duration::from_millis(500),
        "worst send {:?}",
        sends.worst
    );
    assert_gap_free(&sends.seqs);
}

fn assert_gap_free(seqs: &[u64]) {
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "one seq per message, no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stopped_with_sigterm_hands_its_chats_over_without_unavailable() {
    let mut cluster = Cluster::start(1, 2).await;
    let chat = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    let owner = cluster.owner_of(&chat).await;

    // Alice sends steadily from before the signal until well after the exit.
    let (exited_tx, exited_rx) = tokio::sync::oneshot::channel::<()>();
    let mut after_exit = tokio::spawn(async move {
        let _ = exited_rx.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let sender = tokio::spawn(async move {
        let sends = send_steadily(&mut alice, &chat, &mut after_exit, 0, None).await;
        (sends, chat)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = Instant::now();
    let clean_exit = cluster.terminate_chat_service(owner).await.unwrap();
    let exit_took = stopped_at.elapsed();
    let _ = exited_tx.send(());
    let (sends, chat) = sender.await.unwrap();
    assert!(clean_exit, "exited cleanly");

    println!(
        "SIGTERM of the owner: worst send {:?} (sent {:?} after the signal), {} sends, refusals {:?}, exit after {exit_took:?}",
        sends.worst,
        sends.worst_sent_at.map(|at| at.saturating_duration_since(stopped_at)),
        sends.seqs.len(),
        sends.refusals
    );
    assert_unnoticed(&sends);
    assert_ne!(
        cluster.owner_of(&chat).await,
        owner,
        "the survivor owns the chat"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_loses_its_data_chats_keep_their_owners_and_are_served_within_three_seconds() {
    let mut cluster = Cluster::start(1, 2).await;
    let chat = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    let mut bob = cluster.connect(0, "bob", "phone").await;
    let owner = cluster.owner_of(&chat).await;
    let rejoin = Rejoin {
        gateway: cluster.gateway_addr(0),
        user: "alice",
    };

    // Alice keeps sending through the restart, and for a while after it.
    let (restarted_tx, restarted_rx) = tokio::sync::oneshot::channel::<()>();
    let mut restart_done = tokio::spawn(async move {
        let _ = restarted_rx.await;
        tokio::time::sleep(LEASE_TTL * 2).await;
    });
    let sender = tokio::spawn(async move {
        let sends = send_steadily(&mut alice, &chat, &mut restart_done, 20, Some(rejoin)).await;
        (sends, chat)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.redis.restart().await;
    let restarted = Instant::now();
    let _ = restarted_tx.send(());

    // Presence comes back. Bob is told to reconnect (the gateway's subscription lost events
    // while Redis was away) and does, so his new session counts too: this no longer shows
    // the gateway re-registering old sessions by itself (the presence service's own
    // restart test does).
    let http = cluster.http(0);
    let presence_back = loop {
        if bob
            .try_wait_for(Duration::from_millis(1), |f| f["type"] == "reconnect")
            .await
            .is_some()
        {
            bob = cluster.connect(0, "bob", "phone").await;
        }
        let (_, presence) = http
            .get("/v1/presence?user_ids=bob", Some(&token("alice", None)))
            .await;
        if presence["users"][0]["online"] == true {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "bob never online again: {presence}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (sends, chat) = sender.await.unwrap();
    println!(
        "Redis restart: worst send {:?}, {} sends, {} refusals {:?}, {} reconnects; presence back after {presence_back:?}",
        sends.worst,
        sends.seqs.len(),
        sends.refusals.len(),
        sends.refusals,
        sends.rejoins
    );
    assert!(
        sends.worst <= Duration::from_secs(3),
        "worst send {:?}",
        sends.worst
    );
    assert_gap_free(&sends.seqs);
    assert_eq!(
        cluster.owner_of(&chat).await,
        owner,
        "the owner kept its chat"
    );
    let mut conn = cluster
        .redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let partitions: Option<u32> = conn.get("chat:partitions").await.unwrap();
    assert_eq!(
        partitions,
        Some(chat_testkit::PARTITIONS),
        "partition count rebuilt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_the_chat_services_goes_unnoticed_by_a_sending_client() {
    let mut cluster = Cluster::start(1, 2).await;
    let chat = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;

    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let mut rolled = tokio::spawn(async move {
        let _ = done_rx.await;
    });
    let sender = tokio::spawn(async move {
        let sends = send_steadily(&mut alice, &chat, &mut rolled, 20, None).await;
        (sends, chat)
    });
    // Each instance in turn: SIGTERM (it hands its partitions over), start it again (the
    // other hands it back its share), and wait until it serves some partitions again.
    let mut redis = cluster
        .redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            cluster.terminate_chat_service(i).await.unwrap(),
            "clean exit"
        );
        let process = cluster.spawn_chat_service(i).await;
        cluster.chat_services[i] = Some(process);
        let started = Instant::now();
        loop {
            let mut held = 0;
            for p in 0..chat_testkit::PARTITIONS {
                let lease: Option<String> = redis.get(format!("chat:lease:{p}")).await.unwrap();
                held += lease.is_some_and(|l| l.starts_with(&format!("chat-{i}:"))) as u32;
            }
            if held == chat_testkit::PARTITIONS / 2 {
                break;
            }
            assert!(
                started.elapsed() < LEASE_TTL * 5,
                "chat-{i} never got its share back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = done_tx.send(());
    let (sends, _) = sender.await.unwrap();
    println!(
        "rolling restart: worst send {:?}, {} sends, refusals {:?}",
        sends.worst,
        sends.seqs.len(),
        sends.refusals
    );
    assert_unnoticed(&sends);
}
