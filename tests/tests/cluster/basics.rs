//! Clients on different gateways exchange 1:1 and group messages with the guarantees.

use std::time::Duration;

use chat_testkit::{token, Cluster};
use serde_json::{json, Map};

fn is_msg_of(chat: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |f| f["type"] == "msg" && f["chat_id"] == chat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_gateways_talk_with_every_guarantee() {
    let cluster = Cluster::start(2, 2).await;
    let http = cluster.http(0);
    let direct = http
        .create_chat(
            &token("alice", None),
            json!({"kind": "direct", "members": ["bob"]}),
        )
        .await;
    let group = http
        .create_chat(
            &token("alice", None),
            json!({"kind": "group", "title": "g", "members": ["bob", "carol"]}),
        )
        .await;
    // Creating the same direct chat through the other gateway finds the same chat.
    let (status, again) = cluster
        .http(1)
        .post(
            "/v1/chats",
            Some(&token("bob", None)),
            json!({"kind": "direct", "members": ["alice"]}),
        )
        .await;
    assert_eq!(
        (status, again["chat_id"].as_str()),
        (200, Some(direct.as_str()))
    );

    let mut alice = cluster.connect(0, "alice", "phone").await;
    let mut bob_phone = cluster.connect(1, "bob", "phone").await;
    let mut bob_laptop = cluster.connect(0, "bob", "laptop").await;
    let mut carol = cluster.connect(1, "carol", "phone").await;
    assert_ne!(alice.hello["server_id"], bob_phone.hello["server_id"]);

    // Presence crosses gateways.
    let presence = alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    assert_eq!(presence["users"][0]["online"], true);

    // Durable ack, fan-out to every device on every gateway, order.
    let deadline = Duration::from_secs(20);
    for i in 1..=20 {
        let sent = alice
            .send_retrying(&direct, &format!("d{i}"), "hi", deadline)
            .await
            .unwrap();
        assert_eq!(sent["seq"], i);
    }
    for bob in [&mut bob_phone, &mut bob_laptop] {
        let mut seqs = Vec::new();
        for _ in 0..20 {
            seqs.push(
                bob.wait_for(is_msg_of(&direct)).await["seq"]
                    .as_u64()
                    .unwrap(),
            );
        }
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    }
    // Idempotent across gateways.
    let repeat = bob_laptop.request(json!({"type": "ping"})).await;
    assert_eq!(repeat["type"], "pong");
    let mut alice_on_gw1 = cluster.connect(1, "alice", "tablet").await;
    let first = alice_on_gw1
        .send_retrying(&direct, "d1", "hi", deadline)
        .await
        .unwrap();
    assert_eq!(first["seq"], 1);

    // Groups, receipts and typing across gateways.
    let sent = carol
        .send_retrying(&group, "g1", "group hello", deadline)
        .await
        .unwrap();
    for client in [&mut alice, &mut bob_phone] {
        let msg = client.wait_for(is_msg_of(&group)).await;
        assert_eq!(msg["msg_id"], sent["msg_id"]);
    }
    bob_phone
        .request(json!({"type": "read", "chat_id": group, "seq": 1}))
        .await;
    let receipt = carol
        .wait_for(|f| f["type"] == "receipt" && f["kind"] == "read")
        .await;
    assert_eq!(receipt["user_id"], "bob");
    alice
        .send_json(json!({"type": "typing", "chat_id": group}))
        .await;
    let typing = carol.wait_for(|f| f["type"] == "typing").await;
    assert_eq!(typing["user_id"], "alice");

    // Gap-free catch-up for a device that was never connected.
    let mut bob_new = cluster.connect(1, "bob", "new").await;
    let (messages, synced) = bob_new.sync_all(Map::new(), 7).await;
    assert_eq!(synced["complete"], true);
    let direct_seqs: Vec<u64> = messages
        .iter()
        .filter(|m| m["chat_id"] == direct)
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(direct_seqs, (1..=20).collect::<Vec<_>>());

    // Authorization holds through the internal API.
    let mut mallory = cluster.connect(1, "mallory", "phone").await;
    let denied = mallory
        .request(json!({"type": "history", "chat_id": direct}))
        .await;
    assert_eq!(denied["code"], "forbidden");
    let (status, _) = cluster
        .http(1)
        .get(
            &format!("/v1/chats/{direct}/messages"),
            Some(&token("mallory", None)),
        )
        .await;
    assert_eq!(status, 403);
    let (status, page) = cluster
        .http(1)
        .get(
            &format!("/v1/chats/{direct}/messages?limit=5"),
            Some(&token("bob", None)),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"].as_array().unwrap().len(), 5);
}

/// The number in a Prometheus text line starting with `series`, or 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_offline_user_reaches_the_push_worker() {
    let cluster = Cluster::start(2, 2).await;
    let direct = cluster
        .http(0)
        .create_chat(
            &token("alice", None),
            json!({"kind": "direct", "members": ["dora"]}),
        )
        .await;
    // Dora is offline with a registered (APNs) device; no provider is configured yet.
    let (status, _) = cluster
        .http(1)
        .post(
            "/v1/devices",
            Some(&token("dora", None)),
            json!({"device_id": "phone", "platform": "apns", "token": "t"}),
        )
        .await;
    assert_eq!(status, 204);
    let mut alice = cluster.connect(0, "alice", "phone").await;
    alice
        .send_retrying(&direct, "to-offline", "hello?", Duration::from_secs(20))
        .await
        .unwrap();

    // chat-service queued a job on the Redis Stream; chat-push claimed it, found dora's
    // device and, with no APNs provider, counted it.
    let metrics_url = format!("http://{}/metrics", cluster.push.addr);
    let series = r#"chat_push_skipped_total{reason="no_provider"}"#;
    for _ in 0..100 {
        let text = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, series) >= 1.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the push worker never processed the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_runs_over_redis_with_tls() {
    // Redis serves TLS only: leases, fan-out, presence and the push queue all use rediss://.
    let cluster = Cluster::start_over_tls(2, 1).await;
    let chat = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(0, "alice", "phone").await;
    let mut bob = cluster.connect(1, "bob", "phone").await;
    let sent = alice.send_message(&chat, "over-tls", "hello").await;
    assert_eq!(sent["type"], "sent", "{sent}");
    let got = bob.wait_for(is_msg_of(&chat)).await;
    assert_eq!(got["body"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_watch_ends_across_gateways_when_the_last_shared_chat_is_left() {
    let cluster = Cluster::start(2, 2).await;
    let group = cluster
        .http(0)
        .create_chat(
            &token("eve", None),
            json!({"kind": "group", "title": "g", "members": ["frank", "gina"]}),
        )
        .await;
    let mut eve = cluster.connect(0, "eve", "phone").await;
    let watched = eve
        .request(json!({"type": "presence_sub", "user_ids": ["frank", "gina"]}))
        .await;
    assert!(watched["users"][0]["error"].is_null(), "{watched}");
    let (status, _) = cluster
        .http(1)
        .delete(
            &format!("/v1/chats/{group}/members/frank"),
            Some(&token("frank", None)),
        )
        .await;
    assert_eq!(status, 204);
    // The revocation travels over Redis to eve's gateway; give it a moment to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _frank = cluster.connect(1, "frank", "phone").await;
    let _gina = cluster.connect(1, "gina", "phone").await;
    let seen = eve.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(
        seen["users"][0]["user_id"], "gina",
        "frank's frame came: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_holds_across_gateways_and_chat_services() {
    let cluster = Cluster::start(2, 2).await;
    let direct = cluster.direct_chat(0, "alice", "bob").await;
    let mut alice = cluster.connect(1, "alice", "phone").await;
    let watch = alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    assert!(watch["users"][0]["error"].is_null(), "{watch}");
    // bob blocks through the other gateway; the block goes to their chat's owner.
    let (status, _) = cluster
        .http(0)
        .put("/v1/blocks/alice", Some(&token("bob", None)))
        .await;
    assert_eq!(status, 204);
    let refused = alice
        .request(json!({"type": "send", "chat_id": direct, "client_msg_id": "x1", "body": "hi"}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (_, presence) = cluster
        .http(1)
        .get("/v1/presence?user_ids=bob", Some(&token("alice", None)))
        .await;
    assert_eq!(presence["users"][0]["error"], "forbidden");
    // Her watch ended too: bob coming online tells her nothing, gina (another watch) does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _bob = cluster.connect(0, "bob", "phone").await;
    cluster.direct_chat(1, "alice", "gina").await;
    alice
        .request(json!({"type": "presence_sub", "user_ids": ["gina"]}))
        .await;
    let _gina = cluster.connect(0, "gina", "phone").await;
    let seen = alice
        .wait_for(|f| f["type"] == "presence" && f.get("re").is_none())
        .await;
    assert_eq!(
        seen["users"][0]["user_id"], "gina",
        "bob's frame came: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_last_seen_stays_hidden_in_frames_from_another_gateway() {
    let cluster = Cluster::start(2, 1).await;
    cluster.direct_chat(0, "alice", "bob").await;
    let (status, _) = cluster
        .http(1)
        .put_json(
            "/v1/me/privacy",
            Some(&token("bob", None)),
            json!({"last_seen": "nobody"}),
        )
        .await;
    assert_eq!(status, 204);
    let mut alice = cluster.connect(0, "alice", "phone").await;
    alice
        .request(json!({"type": "presence_sub", "user_ids": ["bob"]}))
        .await;
    // bob's gateway announces his transitions; it asks the chat service for his setting.
    let bob = cluster.connect(1, "bob", "phone").await;
    let online = alice.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(online["users"][0]["online"], true);
    assert!(online["users"][0]["last_seen"].is_null(), "{online}");
    bob.close().await;
    let offline = alice.wait_for(|f| f["type"] == "presence").await;
    assert_eq!(offline["users"][0]["online"], false);
    assert!(offline["users"][0]["last_seen"].is_null(), "{offline}");
}
