//! A real `redis-server` for tests: started on a free loopback port with no persistence,
//! killed and restarted on the same port to test reconnection; or serving TLS only, with
//! a test CA made by `openssl`, as managed Redis services do.
#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    tls: bool,
}

impl RedisServer {
    /// Starts `redis-server` (which must be on PATH; `scripts/test` installs it).
    pub async fn start() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            tls: false,
        };
        server.spawn().await;
        server
    }

    /// Starts `redis-server` accepting TLS only (no plain port), with a certificate for
    /// `localhost` issued by a CA made for this server (`ca_file`).
    pub async fn start_tls() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        make_certificates(dir.path());
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            tls: true,
        };
        server.spawn().await;
        server
    }

    /// `redis://…`, or `rediss://localhost:…` for a TLS server.
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}/", self.port)
        } else {
            format!("redis://127.0.0.1:{}/", self.port)
        }
    }

    /// A client for this server (trusting its test CA when it serves TLS).
    pub fn client(&self) -> redis::Client {
        if !self.tls {
            return redis::Client::open(self.url()).expect("redis url");
        }
        // As the services do at start (chat_ops::install_crypto_provider): more than one
        // rustls provider is compiled into the test binaries.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root_cert = Some(std::fs::read(self.ca_file()).expect("test CA"));
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert,
        };
        redis::Client::build_with_tls(self.url(), certificates).expect("redis url")
    }

    /// The CA that issued a TLS server's certificate (PEM).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    async fn spawn(&mut self) {
        let port = self.port.to_string();
        let listen: &[&str] = if self.tls {
            &[
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.pem",
                "--tls-auth-clients",
                "no",
            ]
        } else {
            &["--port", &port]
        };
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            let up = if self.tls {
                TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
            } else {
                ping(self.port).await
            };
            if up {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// SIGKILL: every connection drops, all data is gone (no persistence).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 it issued, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl must be installed (scripts/test installs it)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write extensions");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=chat test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// True when something on `port` answers PING with PONG.
async fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply)).await,
        Ok(Ok(_)) if &reply == b"+PONG\r\n"
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
