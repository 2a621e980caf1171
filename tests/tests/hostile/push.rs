//! A burst into a big group must not flood the push queue (or the log): one job per
//! recipient per chat burst, drops counted and logged once per interval. And a user who
//! registers device after device for push: every push would go to each, so the list
//! stops at `CHAT_MAX_PUSH_DEVICES`.

use chat_testkit::{binary, token, ChatdProcess, WsClient};
use serde_json::json;

use crate::helpers::{group, refusals};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_registrations_per_user_are_bounded() {
    let data = tempfile::tempdir().unwrap();
    let chatd = ChatdProcess::spawn(
        &binary("chatd"),
        data.path(),
        &["--max-push-devices", "3", "--limit-devices", "off"],
    )
    .await;
    let http = chatd.http();
    let mallory = token("mallory", None);
    let register = |device: String| json!({"device_id": device, "platform": "fcm", "token": "t"});
    let mut answers = Vec::new();
    for i in 0..20 {
        answers.push(
            http.post("/v1/devices", Some(&mallory), register(format!("d{i}")))
                .await,
        );
    }
    assert_eq!(
        refusals(&answers),
        17,
        "three devices kept, the rest refused"
    );
    // A registered device may still replace its token at the cap; removing one frees a slot.
    let again = http
        .post("/v1/devices", Some(&mallory), register("d0".into()))
        .await;
    assert_eq!(again.0, 204, "{:?}", again.1);
    assert_eq!(http.delete("/v1/devices/d0", Some(&mallory)).await.0, 204);
    let newcomer = http
        .post("/v1/devices", Some(&mallory), register("new".into()))
        .await;
    assert_eq!(newcomer.0, 204, "{:?}", newcomer.1);
    // Another user is not affected.
    let other = http
        .post(
            "/v1/devices",
            Some(&token("alice", None)),
            register("phone".into()),
        )
        .await;
    assert_eq!(other.0, 204, "{:?}", other.1);
    let metrics = chatd.metrics().await;
    assert!(
        metrics.contains(r#"chat_limit_hits_total{limit="push_devices_per_user"} 17"#),
        "the refusals are counted"
    );
}
