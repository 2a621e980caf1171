//! A client back online flushes its outbox: hundreds of sends pipelined on one connection.
//! Every one is acked — slowed if need be, never dropped — and the connection stays open.

use chat_testkit::TestServer;

use crate::helpers::{all_messages, assert_alive, group};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_of_400_pipelined_sends_is_fully_acked_on_one_connection() {
    let server = TestServer::start().await;
    let chat = group(&server.http(), "alice", &["bob".into()]).await;
    let mut alice = server.connect("alice", "phone").await;
    let replies = alice
        .send_pipelined(&chat, "out-", 400, "queued offline")
        .await;
    let mut acked = 0;
    for (i, reply) in replies.iter().enumerate() {
        match reply["type"].as_str() {
            Some("sent") => acked += 1,
            _ => {
                // A rate_limited answer is allowed; the client retries the same id.
                assert_eq!(reply["code"], "rate_limited", "{reply}");
                alice
                    .send_message(&chat, &format!("out-{i}"), "queued offline")
                    .await;
                acked += 1;
            }
        }
    }
    assert_eq!(acked, 400);
    assert!(alice.closed.is_none(), "the server closed an eager client");
    assert_alive(&mut alice).await;
    let stored = all_messages(&server.http(), "alice", &chat).await;
    assert_eq!(stored.len(), 400);
    let in_order: Vec<String> = stored
        .iter()
        .map(|m| m["client_msg_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..400).map(|i| format!("out-{i}")).collect();
    assert_eq!(in_order, expected, "the outbox keeps its order");
}
