//! A burst into a big group must not flood the push queue (or the log): one job per
//! recipient per chat burst, drops counted and logged once per interval.

use chat_testkit::{binary, ChatdProcess, WsClient};

use crate::helpers::group;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_into_a_big_group_is_bounded_in_queue_and_log() {
    let data = tempfile::tempdir().unwrap();
    let chatd = ChatdProcess::spawn(
        &binary("chatd"),
        data.path(),
        &["--push-queue", "200", "--limit-send", "off"],
    )
    .await;
    let members: Vec<String> = (0..2000).map(|i| format!("member{i}")).collect();
    let chat = group(&chatd.http(), "alice", &members).await;
    let mut alice = WsClient::connect(chatd.addr, "alice", Some("phone"))
        .await
        .unwrap();
    for reply in alice.send_pipelined(&chat, "burst-", 30, "hello all").await {
        assert_eq!(reply["type"], "sent", "{reply}");
    }
    // Every recipient (2,000 besides alice) is offline: at most one waiting job each.
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let mut text = String::new();
    for _ in 0..100 {
        text = chatd.metrics().await;
        let handled = metric(&text, "chat_push_collapsed_total")
            + metric(&text, "chat_push_dropped_total")
            + metric(&text, "chat_push_queued_total");
        if handled >= 30 * 2000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let queued = metric(&text, "chat_push_queued_total");
    let collapsed = metric(&text, "chat_push_collapsed_total");
    let dropped = metric(&text, r#"chat_push_dropped_total{reason="queue_full"}"#);
    assert_eq!(queued + collapsed + dropped, 30 * 2000, "{text}");
    assert!(
        collapsed > 0,
        "later messages of the burst did not collapse"
    );
    assert!(dropped > 0, "a queue of 200 held 2,000 recipients");
    let logged = chatd.process().log_lines_with("push jobs not queued");
    assert!(
        (1..=2).contains(&logged.len()),
        "{} log lines for {dropped} drops",
        logged.len()
    );
}
