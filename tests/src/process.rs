//! `chatd` as a real child process, for tests that kill it (SIGKILL) and restart it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Http, WsClient, TEST_SECRET};

pub struct ChatdProcess {
    pub addr: SocketAddr,
    child: Child,
}

impl ChatdProcess {
    /// Starts `binary serve` on a free port over `data_dir` and waits until it listens.
    pub async fn spawn(binary: &Path, data_dir: &Path, extra_args: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .env("CHAT_JWT_SECRET", TEST_SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chatd");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read chatd log") {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if entry["fields"]["message"] == "chatd listening" {
                    let addr = entry["fields"]["addr"].as_str().expect("addr field");
                    return addr.parse::<SocketAddr>().expect("socket address");
                }
            }
            panic!("chatd exited before listening");
        })
        .await
        .expect("chatd did not start listening in time");
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChatdProcess { addr, child }
    }

    pub fn http(&self) -> Http {
        Http::new(self.addr)
    }

    pub async fn connect(&self, user: &str, device: &str) -> WsClient {
        WsClient::connect(self.addr, user, Some(device))
            .await
            .expect("connects")
    }

    /// SIGKILL: no drain, no flush.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill chatd");
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status success.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("running child");
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("chatd did not exit after SIGTERM")
            .map(|s| s.success())
            .unwrap_or(false)
    }
}
