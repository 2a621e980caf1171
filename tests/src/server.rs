//! `chatd` in the test process, on port 0, with its own temporary data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chatd::{Chatd, ServeArgs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Http, WsClient, WsError, TEST_SECRET};

pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with settings adjusted by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(temp.path(), configure).await;
        server._temp = Some(temp);
        server
    }

    /// Starts on an existing data directory (to test restarts).
    pub async fn start_in(data_dir: &Path, configure: impl FnOnce(&mut ServeArgs)) -> Self {
        crate::init_test_logging();
        let mut args = ServeArgs::with_data_dir(data_dir);
        args.jwt_secret = Some(TEST_SECRET.into());
        configure(&mut args);
        let shutdown = CancellationToken::new();
        let chatd = Chatd::build(args, shutdown.clone())
            .await
            .expect("chatd builds");
        let addr = chatd.local_addr();
        let task = tokio::spawn(chatd.run_until_stopped());
        TestServer {
            addr,
            data_dir: data_dir.to_owned(),
            shutdown,
            task: Some(task),
            _temp: None,
        }
    }

    pub fn http(&self) -> Http {
        Http::new(self.addr)
    }

    /// A WebSocket client of `user` on `device`, past its `hello`.
    pub async fn connect(&self, user: &str, device: &str) -> WsClient {
        WsClient::connect(self.addr, user, Some(device))
            .await
            .expect("connects")
    }

    pub async fn try_connect_url(&self, path_and_query: &str) -> Result<WsClient, WsError> {
        WsClient::connect_url(&format!("ws://{}{}", self.addr, path_and_query)).await
    }

    /// Graceful shutdown; waits until the server has drained and flushed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }

    /// Starts the drain without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
