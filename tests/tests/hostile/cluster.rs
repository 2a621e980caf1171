//! The flood and the slow reader against the scaled-out gateway: the same bounds hold when
//! the chat service is another process behind the internal API.

use chat_testkit::Cluster;
use serde_json::Map;

use crate::floods::{check_flood, rest_send_flood};
use crate::helpers::{all_messages, assert_alive, group};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_send_flood_through_a_gateway_is_held_to_the_budget() {
    let cluster = Cluster::start(1, 1).await;
    let http = cluster.http(0);
    let chat = group(&http, "alice", &["bob".into()]).await;
    let base = format!("http://{}", cluster.gateway_addr(0));
    let outcomes = rest_send_flood(&base, "alice", &chat, 1500, 64).await;
    let stored = all_messages(&http, "alice", &chat).await;
    check_flood(&outcomes, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_on_a_gateway_is_closed_and_recovers_by_sync() {
    let small_queue = ["--limit-send", "off", "--outbound-queue-bytes", "65536"];
    let cluster = Cluster::start_with(2, 1, &small_queue).await;
    let chat = group(&cluster.http(0), "alice", &["bob".into()]).await;
    // Bob, on one gateway, never reads; alice sends from the other.
    let mut bob = cluster.connect(0, "bob", "phone").await;
    let mut alice = cluster.connect(1, "alice", "phone").await;
    let body = "s".repeat(16 * 1024);
    // Enough to overflow the kernel's socket buffers and then bob's queue.
    const COUNT: usize = 1200;
    for reply in alice.send_pipelined(&chat, "m", COUNT, &body).await {
        assert_eq!(reply["type"], "sent", "{reply}");
    }
    assert_alive(&mut alice).await;
    assert_eq!(bob.wait_closed().await, Some(1013));
    let mut bob = cluster.connect(0, "bob", "phone").await;
    let (messages, _) = bob.sync_all(Map::new(), 1000).await;
    let seqs: Vec<u64> = messages
        .iter()
        .filter(|m| m["chat_id"] == chat.as_str())
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=COUNT as u64).collect::<Vec<_>>());
    assert_eq!(
        all_messages(&cluster.http(1), "bob", &chat).await.len(),
        COUNT
    );
}
