//! Slowloris: sockets that send half a request head, or nothing, to hold a connection
//! open forever. The header deadline closes them; meanwhile real clients are served.

use std::time::{Duration, Instant};

use chat_testkit::TestServer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{assert_alive, closed_within};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_sockets_are_closed_at_the_header_deadline() {
    let server =
        TestServer::start_with(|a| a.common.http.http_header_timeout = HEADER_TIMEOUT).await;
    let opened = Instant::now();
    let mut sockets = Vec::new();
    let token = chat_testkit::token("mallory", None);
    let upgrade = format!(
        "GET /v1/ws?token={token} HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    );
    for i in 0..250 {
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        // Heads that never end: plain requests, and WebSocket upgrades; the rest say nothing.
        if i < 100 {
            socket
                .write_all(b"GET /v1/chats HTTP/1.1\r\nHost: chat\r\nX-Slow: ")
                .await
                .unwrap();
        } else if i < 200 {
            socket.write_all(upgrade.as_bytes()).await.unwrap();
        }
        sockets.push(socket);
    }
    // Real clients are served while the sockets hang.
    let mut client = server.connect("alice", "phone").await;
    assert_alive(&mut client).await;
    for socket in &mut sockets {
        let left = (HEADER_TIMEOUT + Duration::from_secs(3)).saturating_sub(opened.elapsed());
        assert!(
            closed_within(socket, left).await,
            "a slow socket was left open"
        );
    }
    // The WebSocket, past its upgrade, is not bound by the header deadline.
    assert_alive(&mut client).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_too() {
    let server =
        TestServer::start_with(|a| a.common.http.http_header_timeout = HEADER_TIMEOUT).await;
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then nothing more is asked: the connection is closed.
    assert!(closed_within(&mut socket, HEADER_TIMEOUT + Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_request_body_that_trickles_is_cut_off_by_the_request_deadline() {
    let server = TestServer::start_with(|a| {
        a.common.http.http_request_timeout = Duration::from_secs(1);
    })
    .await;
    let token = chat_testkit::token("alice", None);
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/chats HTTP/1.1\r\nHost: chat\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 512];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the trickling request was never cut off");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}
