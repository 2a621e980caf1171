//! Connecting to gateways: tokens, REST calls, and WebSocket connections from a chosen
//! loopback source address (127.0.0.x), so one machine can open more connections than one
//! source address has ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chat_auth::JwtKeys;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

pub struct Keys(JwtKeys);

/// Bytes read from a socket at a time: a few frames of a busy receiver.
const READ_BUFFER_BYTES: usize = 4096;

/// Long enough for any bench run.
const BENCH_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Keys {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        Ok(Keys(
            JwtKeys::new(secret.as_bytes()).map_err(|e| anyhow!("{e}"))?,
        ))
    }

    pub fn token(&self, user: &str) -> String {
        self.0
            .mint(user, None, BENCH_TOKEN_TTL)
            .expect("bench user ids are valid")
    }
}

/// `host:port` of a gateway base URL.
fn address(base: &str) -> anyhow::Result<SocketAddr> {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("ws://"))
        .ok_or_else(|| anyhow!("{base}: only http:// and ws:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    std::net::ToSocketAddrs::to_socket_addrs(authority)?
        .next()
        .ok_or_else(|| anyhow!("{base}: no address"))
}

/// The n-th of `count` loopback source addresses (127.0.0.1, 127.0.0.2, ...).
pub fn source_address(n: usize, count: usize) -> Ipv4Addr {
    let i = (n % count.max(1)) as u32 + 1;
    Ipv4Addr::from(0x7f00_0000 + i)
}

/// Opens a WebSocket as `token`'s user and reads past `hello`.
pub async fn connect(
    base: &str,
    token: &str,
    device: &str,
    source: Option<Ipv4Addr>,
) -> anyhow::Result<Ws> {
    let addr = address(base)?;
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .context("bind source address")?;
    }
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/v1/ws?token={token}&device={device}");
    // tungstenite zero-fills its whole read buffer before every read (128 KiB by default):
    // that was 7% of the machine's CPU in a 10k msgs/s run, taken from the server measured.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    let hello = next_json(&mut ws)
        .await?
        .ok_or_else(|| anyhow!("closed before hello"))?;
    if hello["type"] != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok(ws)
}

/// The next JSON text frame; None when the connection closed.
pub async fn next_json(ws: &mut Ws) -> anyhow::Result<Option<Value>> {
    while let Some(message) = ws.next().await {
        match message? {
            Message::Text(text) => return Ok(Some(serde_json::from_str(&text)?)),
            Message::Close(_) => return Ok(None),
            _ => continue,
        }
    }
    Ok(None)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Creates a chat over REST and returns its id.
pub async fn create_chat(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{}/v1/chats", base.trim_end_matches('/')))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let chat: Value = response.json().await?;
    if !status.is_success() {
        bail!("create chat: {status} {chat}");
    }
    Ok(chat["chat_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no chat_id in {chat}"))?
        .to_owned())
}
