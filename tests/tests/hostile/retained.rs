//! Connections that once read a large reply and then sit idle: what each of them keeps.
//! A `history` page is one frame of up to `CHAT_MAX_PAGE_BYTES`; the WebSocket layer
//! formats frames into a per-connection write buffer, and a buffer that keeps the size
//! its largest frame took would let a few thousand idle connections hold gigabytes.

use chat_testkit::{binary, ChatdProcess, Usage, WsClient};
use serde_json::json;

use crate::helpers::{assert_alive, group};

const CONNECTIONS: usize = 300;
/// A full page: `CHAT_MAX_PAGE_BYTES` (256 KiB) holds 16 messages of 15 KiB.
const MESSAGES: usize = 16;
const BODY_BYTES: usize = 15 * 1024;
/// What an idle connection may keep after reading a ~250 KB page, counting the resident
/// growth against the connections: 20–26 KiB measured (the allocator's share of the
/// freed pages included); ~280 KiB when the write buffer kept its size (vendor/README.md).
const KEPT_AFTER_PAGE_LIMIT_KIB: u64 = 64;
/// The same after sending a 60 KiB frame: ~1 KiB measured; 64 KiB when the read buffer
/// kept the frame's allocation.
const KEPT_AFTER_FRAME_LIMIT_KIB: u64 = 16;

/// The allocator keeps some freed memory per thread; with a worker per core, a many-core
/// machine would count that against the connections.
const TWO_WORKERS: &[(&str, &str)] = &[("TOKIO_WORKER_THREADS", "2")];

/// One device connected for each user.
async fn connect_all(chatd: &ChatdProcess, users: &[String]) -> Vec<WsClient> {
    let mut clients = Vec::new();
    for user in users {
        clients.push(
            WsClient::connect(chatd.addr, user, Some("phone"))
                .await
                .unwrap(),
        );
    }
    clients
}

/// Resident growth since `baseline`, per connection, once the replies have settled.
async fn kept_per_connection_kib(pid: u32, baseline: Usage, what: &str) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = Usage::of(pid);
    let kept_kib = after.rss_kib.saturating_sub(baseline.rss_kib) / CONNECTIONS as u64;
    println!(
        "retained: baseline {} KiB, after {CONNECTIONS} idle connections that {what}: {} KiB ({kept_kib} KiB each)",
        baseline.rss_kib, after.rss_kib
    );
    kept_kib
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_keep_the_size_of_the_largest_reply_they_read() {
    let data = tempfile::tempdir().unwrap();
    let chatd = ChatdProcess::spawn_with_env(
        &binary("chatd"),
        data.path(),
        &["--limit-send", "off", "--limit-reads", "off"],
        TWO_WORKERS,
    )
    .await;
    let pid = chatd.process().pid();
    let readers_ids: Vec<String> = (0..CONNECTIONS).map(|i| format!("r{i}")).collect();
    let chat = group(&chatd.http(), "alice", &readers_ids).await;
    let mut alice = chatd.connect("alice", "phone").await;
    let body = "m".repeat(BODY_BYTES);
    for reply in alice.send_pipelined(&chat, "b-", MESSAGES, &body).await {
        assert_eq!(reply["type"], "sent", "{reply}");
    }

    let mut readers = connect_all(&chatd, &readers_ids).await;
    let baseline = Usage::of(pid);
    for reader in &mut readers {
        let page = reader
            .request(json!({"type": "history", "chat_id": chat, "limit": MESSAGES}))
            .await;
        assert_eq!(page["type"], "history", "{page}");
        assert_eq!(page["messages"].as_array().unwrap().len(), MESSAGES);
    }
    // Every reply is written and read; what is still resident is what the connections keep.
    let kept_kib = kept_per_connection_kib(pid, baseline, "read a ~245 KB page").await;
    assert!(
        kept_kib <= KEPT_AFTER_PAGE_LIMIT_KIB,
        "each idle connection keeps {kept_kib} KiB after one large reply"
    );
    assert_alive(&mut alice).await;
}

/// The same for what a client sends: a frame of up to `CHAT_MAX_FRAME_BYTES` is read
/// into one buffer, and a connection that sent one large frame and went quiet must not
/// keep a buffer of that size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_keep_the_size_of_the_largest_frame_they_sent() {
    let data = tempfile::tempdir().unwrap();
    let chatd = ChatdProcess::spawn_with_env(&binary("chatd"), data.path(), &[], TWO_WORKERS).await;
    let pid = chatd.process().pid();
    let users: Vec<String> = (0..CONNECTIONS).map(|i| format!("s{i}")).collect();
    let mut senders = connect_all(&chatd, &users).await;
    let baseline = Usage::of(pid);
    // Just under the frame limit (64 KiB), so it is read and answered, not refused.
    let padding = "p".repeat(60 * 1024);
    for sender in &mut senders {
        let pong = sender
            .request(json!({"type": "ping", "padding": padding}))
            .await;
        assert_eq!(pong["type"], "pong", "{pong}");
    }
    let kept_kib = kept_per_connection_kib(pid, baseline, "sent a 60 KiB frame").await;
    assert!(
        kept_kib <= KEPT_AFTER_FRAME_LIMIT_KIB,
        "each idle connection keeps {kept_kib} KiB after sending one large frame"
    );
    assert_alive(&mut senders[0]).await;
}
