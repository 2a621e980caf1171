//! One order per chat: senders racing into one group; every member and device sees the
//! same gap-free increasing sequence, live and after sync.

use std::time::Duration;

use chat_testkit::{TestServer, WsClient};
use serde_json::{Map, Value};

use crate::helpers::*;

const SENDERS: usize = 5;
const PER_SENDER: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_senders_produce_one_gap_free_order_for_everyone() {
    let server = TestServer::start_with(|a| {
        a.gateway.send_rate = 10_000;
        a.gateway.send_burst = 10_000;
    })
    .await;
    let names: Vec<String> = (0..SENDERS).map(|i| format!("sender{i}")).collect();
    let refs: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .chain(["watcher"])
        .collect();
    let chat = group_chat(&server, "owner", &refs).await;

    let mut watchers = vec![
        server.connect("watcher", "phone").await,
        server.connect("watcher", "laptop").await,
        server.connect("owner", "phone").await,
    ];
    let mut tasks = Vec::new();
    for name in names.clone() {
        let (addr, chat) = (server.addr, chat.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = WsClient::connect(addr, &name, Some("phone")).await.unwrap();
            let replies = client
                .send_pipelined(&chat, &format!("{name}-"), PER_SENDER, "race")
                .await;
            let mut seqs = Vec::new();
            for reply in replies {
                assert_eq!(reply["type"], "sent", "{reply}");
                seqs.push(reply["seq"].as_u64().unwrap());
            }
            // One sender's pipelined sends keep their order.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{name}: {seqs:?}");
            // It sees everyone else's messages live as well.
            client
        }));
    }
    let mut senders = Vec::new();
    for t in tasks {
        senders.push(t.await.unwrap());
    }
    let total = SENDERS * PER_SENDER;
    let expected: Vec<u64> = (1..=total as u64).collect();

    let mut orders: Vec<Vec<(u64, String)>> = Vec::new();
    for watcher in &mut watchers {
        let mut live = Vec::new();
        while live.len() < total {
            live.push(watcher.wait_for(is_msg_of(&chat)).await);
        }
        let seqs: Vec<u64> = live.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, expected, "live order must be gap-free and increasing");
        orders.push(order_of(&live));
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every device saw the same order"
    );

    // After sync, a fresh device sees exactly the same order.
    let mut late = server.connect("watcher", "new-device").await;
    let (synced, _) = late.sync_all(Map::new(), 1000).await;
    assert_eq!(order_of(&synced), orders[0]);

    // And each sender saw the others' messages in the same order, minus its own.
    for (i, sender) in senders.iter_mut().enumerate() {
        let live = sender
            .collect_for(Duration::from_millis(500), is_msg_of(&chat))
            .await;
        let expected: Vec<(u64, String)> = orders[0]
            .iter()
            .filter(|(_, id)| !id.starts_with(&format!("sender{i}-")))
            .cloned()
            .collect();
        assert_eq!(order_of(&live), expected);
    }
}

fn order_of(messages: &[Value]) -> Vec<(u64, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["client_msg_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
