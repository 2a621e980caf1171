//! `chatd` as a real child process, for tests that kill it (SIGKILL) and restart it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Http, WsClient, TEST_SECRET};

/// The most log lines a process keeps for tests to read.
const KEPT_LOG_LINES: usize = 20_000;

/// Any of our binaries as a child process, listening on a port it chose.
pub struct ServiceProcess {
    pub addr: SocketAddr,
    child: Child,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl ServiceProcess {
    /// Starts `binary` with `args` (which must make it listen on 127.0.0.1:0 and log JSON)
    /// and `env`, and waits for its `"{name} listening"` log line.
    pub async fn spawn(binary: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let ready_message = format!("{name} listening");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read chatd log") {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if entry["fields"]["message"] == ready_message.as_str() {
                    let addr = entry["fields"]["addr"].as_str().expect("addr field");
                    return addr.parse::<SocketAddr>().expect("socket address");
                }
            }
            panic!("{name} exited before listening");
        })
        .await
        .unwrap_or_else(|_| panic!("{name} did not start listening in time"));
        // Keep draining the log (echoed with TEST_LOG) so the child never blocks on a full
        // pipe; the last lines are kept for tests that read them.
        let echo = std::env::var_os("TEST_LOG").is_some();
        let label = name.to_owned();
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{label}] {line}");
                }
                let mut kept = kept.lock().expect("log lock");
                if kept.len() == KEPT_LOG_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        ServiceProcess { addr, child, logs }
    }

    /// The process id, for reading its memory and threads from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running child")
    }

    /// Log lines (JSON) written so far whose message contains `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// SIGKILL: no drain, no flush.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill process");
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits for the exit; true when it exited with success.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("running child");
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("process did not exit after SIGTERM")
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

/// `chatd serve` as a child process over a data directory.
pub struct ChatdProcess {
    pub addr: SocketAddr,
    /// Where its `/metrics` is served (never on the public port).
    pub metrics_addr: SocketAddr,
    process: ServiceProcess,
}

impl ChatdProcess {
    /// Starts `binary serve` on a free port over `data_dir` and waits until it listens.
    pub async fn spawn(binary: &Path, data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::spawn_with_env(binary, data_dir, extra_args, &[]).await
    }

    /// The same, with more environment variables for the process.
    pub async fn spawn_with_env(
        binary: &Path,
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let data_dir = data_dir.to_str().expect("utf-8 path");
        let metrics_addr: SocketAddr = ([127, 0, 0, 1], chat_test_redis::free_port()).into();
        let metrics_listen = metrics_addr.to_string();
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            data_dir,
            "--metrics-listen",
            &metrics_listen,
        ];
        args.extend_from_slice(extra_args);
        let mut env = env.to_vec();
        env.push(("CHAT_JWT_SECRET", TEST_SECRET));
        let process = ServiceProcess::spawn(binary, "chatd", &args, &env).await;
        ChatdProcess {
            addr: process.addr,
            metrics_addr,
            process,
        }
    }

    /// The text of its `/metrics`.
    pub async fn metrics(&self) -> String {
        Http::new(self.metrics_addr).get_text("/metrics").await.1
    }

    pub fn http(&self) -> Http {
        Http::new(self.addr)
    }

    pub fn process(&self) -> &ServiceProcess {
        &self.process
    }

    pub async fn connect(&self, user: &str, device: &str) -> WsClient {
        WsClient::connect(self.addr, user, Some(device))
            .await
            .expect("connects")
    }

    pub async fn kill(self) {
        self.process.kill().await;
    }

    pub async fn terminate(self) -> bool {
        self.process.terminate().await
    }
}
