//! A bare relay: WebSocket in, WebSocket out, nothing stored, no order, no checks beyond
//! routing. It answers `POST /v1/chats` (a direct chat's id names its pair; a group's its
//! members), greets with `hello`, acks `send` at once and forwards a `msg` to the chat's
//! other members. What the real server does on top of this is what durability, order and
//! authorization cost. With `--durable-dir`, each ack and forward waits for the message to
//! be appended to a file and fdatasynced, group-committed (`durable_log.rs`): the floor of
//! any durable path on this disk, with none of the store's structure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::durable_log::{DurableLog, LOG_BYTES};

type Outbound = mpsc::UnboundedSender<Message>;

#[derive(Default)]
struct Relay {
    /// user -> outbound queues of their connections
    users: Mutex<HashMap<String, Vec<Outbound>>>,
    /// chat id -> members
    chats: Mutex<HashMap<String, Vec<String>>>,
    /// Set with `--durable-dir`: deliveries wait for their message's fsync.
    log: Option<DurableLog<Delivery>>,
}

/// What one `send` makes: the ack to its sender and the message to the chat's other
/// members' connections.
struct Delivery {
    sender: Outbound,
    ack: Utf8Bytes,
    msg: Utf8Bytes,
    readers: Vec<Outbound>,
}

impl Delivery {
    fn deliver(self) {
        let _ = self.sender.send(Message::Text(self.ack));
        for reader in &self.readers {
            let _ = reader.send(Message::Text(self.msg.clone()));
        }
    }
}

/// The user a bench token names (its `sub`), read without verifying: the relay checks nothing.
fn user_of(token: &str) -> Option<String> {
    use base64_free::decode_segment;
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&decode_segment(payload)?).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// Just enough base64url decoding for a JWT segment, to keep the relay dependency-free.
mod base64_free {
    pub fn decode_segment(s: &str) -> Option<Vec<u8>> {
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' | b'+' => 62,
                b'_' | b'/' => 63,
                b'=' => continue,
                _ => return None,
            } as u32;
            bits = (bits << 6) | v;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        Some(out)
    }
}

pub(super) async fn run(listen: SocketAddr, durable_dir: Option<&Path>) -> anyhow::Result<()> {
    let log = match durable_dir {
        Some(dir) => Some(DurableLog::start(
            &dir.join("relay.log"),
            LOG_BYTES,
            Delivery::deliver,
        )?),
        None => None,
    };
    let relay = Arc::new(Relay {
        log,
        ..Relay::default()
    });
    let router = Router::new()
        .route("/v1/chats", post(create_chat))
        .route("/v1/ws", get(upgrade))
        .with_state(relay);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("relay listening on http://{}", listener.local_addr()?);
    // Like chatd, the relay sends small frames without Nagle's delay.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}

async fn create_chat(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let caller = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(user_of)
        .unwrap_or_default();
    let mut members: Vec<String> = body["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    members.push(caller);
    members.sort();
    members.dedup();
    let chat_id = format!("relay-{}", uuid::Uuid::new_v4().simple());
    relay.chats.lock().unwrap().insert(chat_id.clone(), members);
    Json(json!({"chat_id": chat_id}))
}

/// As the gateway's (services/gateway/src/ws/mod.rs).
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

async fn upgrade(
    State(relay): State<Arc<Relay>>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let user = params
        .get("token")
        .and_then(|t| user_of(t))
        .unwrap_or_default();
    // The gateway's socket settings, so the comparison is of what happens between reads:
    // tungstenite zero-fills its whole read buffer before every read, 128 KiB by default.
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| connection(relay, user, socket))
}

async fn connection(relay: Arc<Relay>, user: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    relay
        .users
        .lock()
        .unwrap()
        .entry(user.clone())
        .or_default()
        .push(tx.clone());
    let hello = json!({"type": "hello", "proto": 1, "user_id": user});
    let _ = tx.send(Message::Text(hello.to_string().into()));
    // Writes like the gateway: every frame waiting, then one flush.
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(m) = next {
                if sink.feed(m).await.is_err() {
                    return;
                }
                next = rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut seq = 0u64;
    while let Some(Ok(Message::Text(text))) = stream.next().await {
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match frame["type"].as_str() {
            Some("send") => {
                seq += 1;
                let chat = frame["chat_id"].as_str().unwrap_or_default().to_owned();
                let ack = json!({"type": "sent", "re": frame["id"], "chat_id": chat, "seq": seq});
                let msg = json!({"type": "msg", "chat_id": chat, "seq": seq, "sender_id": user, "body": frame["body"]}).to_string();
                let members = relay
                    .chats
                    .lock()
                    .unwrap()
                    .get(&chat)
                    .cloned()
                    .unwrap_or_default();
                let readers = {
                    let users = relay.users.lock().unwrap();
                    members
                        .iter()
                        .filter(|m| **m != user)
                        .flat_map(|m| users.get(m).into_iter().flatten().cloned())
                        .collect()
                };
                let delivery = Delivery {
                    sender: tx.clone(),
                    ack: ack.to_string().into(),
                    msg: msg.into(),
                    readers,
                };
                match &relay.log {
                    Some(log) => {
                        let record = [delivery.msg.as_bytes(), b"\n"].concat();
                        log.append(record, delivery);
                    }
                    None => delivery.deliver(),
                }
            }
            Some("sync") => {
                let _ = tx.send(Message::Text(
                    json!({"type": "synced", "re": frame["id"], "complete": true, "chats": []})
                        .to_string()
                        .into(),
                ));
            }
            _ => {}
        }
    }
    writer.abort();
}
