//! `chatd` as a real process: SIGKILL right after the last ack loses nothing, SIGTERM
//! drains cleanly, and `chatd token` mints tokens the server accepts.

use std::path::Path;

use chat_testkit::{ChatdProcess, WsClient};
use serde_json::{json, Value};

const CHATD: &str = env!("CARGO_BIN_EXE_chatd");
const SENDS: usize = 400;

async fn direct_chat(server: &ChatdProcess) -> String {
    server
        .http()
        .create_chat(
            &chat_testkit::token("alice", None),
            json!({"kind": "direct", "members": ["bob"]}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_last_ack_loses_no_acked_message() {
    let data = tempfile::tempdir().unwrap();
    let server = ChatdProcess::spawn(
        Path::new(CHATD),
        data.path(),
        &["--send-rate", "100000", "--send-burst", "100000"],
    )
    .await;
    let chat = direct_chat(&server).await;
    let mut alice = server.connect("alice", "phone").await;
    let acked: Vec<Value> = alice.send_pipelined(&chat, "m", SENDS, "body").await;
    for reply in &acked {
        assert_eq!(reply["type"], "sent", "{reply}");
    }
    server.kill().await;

    let restarted = ChatdProcess::spawn(Path::new(CHATD), data.path(), &[]).await;
    let (status, page) = restarted
        .http()
        .get(
            &format!("/v1/chats/{chat}/messages?after_seq=0&limit=200"),
            Some(&chat_testkit::token("bob", None)),
        )
        .await;
    assert_eq!(status, 200);
    let mut bob = restarted.connect("bob", "phone").await;
    let (stored, _) = bob.sync_all(serde_json::Map::new(), 1000).await;
    assert_eq!(stored.len(), SENDS, "every acked message survived");
    assert_eq!(page["messages"][0]["msg_id"], stored[0]["msg_id"]);
    for (ack, message) in acked.iter().zip(&stored) {
        assert_eq!(ack["seq"], message["seq"]);
        assert_eq!(ack["msg_id"], message["msg_id"]);
        assert_eq!(ack["client_msg_id"], message["client_msg_id"]);
    }
    // Resending any acked client_msg_id returns the original, for all of them.
    let mut alice = restarted.connect("alice", "phone").await;
    for (i, ack) in acked.iter().enumerate().step_by(7) {
        let again = alice.send_message(&chat, &format!("m{i}"), "resent").await;
        assert_eq!(again["msg_id"], ack["msg_id"]);
        assert_eq!(again["seq"], ack["seq"]);
    }
    // And the order goes on from where the log ended.
    let next = alice.send_message(&chat, "after-restart", "x").await;
    assert_eq!(next["seq"], SENDS as u64 + 1);
    restarted.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let server =
        ChatdProcess::spawn(Path::new(CHATD), data.path(), &["--reconnect-jitter", "1s"]).await;
    let mut client = WsClient::connect(server.addr, "alice", Some("phone"))
        .await
        .unwrap();
    let addr = server.addr;
    assert!(server.terminate().await, "chatd exits 0 after SIGTERM");
    let reconnect = client.wait_for(|f| f["type"] == "reconnect").await;
    assert!(reconnect["after_ms"].as_u64().unwrap() <= 1000);
    assert_eq!(client.wait_closed().await, Some(1012));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_uses_the_secret_generated_in_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    // Without CHAT_JWT_SECRET the server generates and keeps a secret.
    let mut child = tokio::process::Command::new(CHATD)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("CHAT_JWT_SECRET")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        let entry: Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["fields"]["message"] == "chatd listening" {
            addr = Some(entry["fields"]["addr"].as_str().unwrap().to_owned());
            break;
        }
    }
    let addr = addr.expect("chatd listened");
    let secret_file = data.path().join("jwt-secret");
    assert!(secret_file.exists());
    let output = std::process::Command::new(CHATD)
        .args([
            "token",
            "dave",
            "--device",
            "cli",
            "--ttl",
            "1h",
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("CHAT_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let client = WsClient::connect_url(&format!("ws://{addr}/v1/ws?token={token}"))
        .await
        .unwrap();
    assert_eq!(client.hello["user_id"], "dave");
    assert_eq!(client.hello["device_id"], "cli");
    child.kill().await.unwrap();

    // Without a secret anywhere, `token` says what to do.
    let empty = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(CHATD)
        .args(["token", "dave", "--data-dir"])
        .arg(empty.path())
        .env_remove("CHAT_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("chatd serve"));
}
