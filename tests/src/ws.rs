//! A WebSocket test client speaking protocol v1, with helpers that wait for a particular
//! frame while keeping the others for later waits.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

pub type WsError = tokio_tungstenite::tungstenite::Error;

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for another, in arrival order.
    backlog: VecDeque<Value>,
    pub hello: Value,
    next_id: u64,
    /// Set when the server closed the connection.
    pub closed: Option<Option<CloseFrame>>,
    /// `unavailable` answers `send_retrying` has retried on this connection.
    pub retries: u64,
}

impl WsClient {
    pub async fn connect(
        addr: SocketAddr,
        user: &str,
        device: Option<&str>,
    ) -> Result<Self, WsError> {
        let token = crate::token(user, None);
        let mut url = format!("ws://{addr}/v1/ws?token={token}");
        if let Some(device) = device {
            url.push_str(&format!("&device={device}"));
        }
        Self::connect_url(&url).await
    }

    pub async fn connect_url(url: &str) -> Result<Self, WsError> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        let mut client = WsClient {
            socket,
            backlog: VecDeque::new(),
            hello: Value::Null,
            next_id: 0,
            closed: None,
            retries: 0,
        };
        client.hello = client.next_frame().await.expect("hello frame");
        assert_eq!(client.hello["type"], "hello", "first frame must be hello");
        Ok(client)
    }

    /// A fresh request id.
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        format!("r{}", self.next_id)
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Sends a frame; false when the connection is gone.
    pub async fn try_send_json(&mut self, frame: Value) -> bool {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_ok()
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send frame");
    }

    /// Sends a text frame whose payload is `bytes` as they are, valid UTF-8 or not (as a
    /// broken client would).
    pub async fn send_raw_text(&mut self, bytes: Vec<u8>) {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        let frame = Frame::message(bytes, OpCode::Data(Data::Text), true);
        self.socket
            .send(Message::Frame(frame))
            .await
            .expect("send frame");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.socket
            .send(Message::Binary(data.into()))
            .await
            .expect("send frame");
    }

    /// Sends a request with a fresh id and returns its reply (the frame with that `re`).
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let id = self.id();
        frame["id"] = json!(id);
        self.send_json(frame).await;
        self.reply_to(&id).await
    }

    pub async fn reply_to(&mut self, id: &str) -> Value {
        self.wait_for(|f| f["re"] == id).await
    }

    /// The next frame matching `pred` (from the backlog first), within `WAIT`.
    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        self.try_wait_for(WAIT, pred)
            .await
            .expect("expected frame did not arrive")
    }

    pub async fn try_wait_for(
        &mut self,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next_frame())
                .await
                .ok()??;
            if pred(&frame) {
                return Some(frame);
            }
            self.backlog.push_back(frame);
        }
    }

    /// A frame already received (kept while waiting for others) that matches `pred`.
    pub fn try_take(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let i = self.backlog.iter().position(pred)?;
        self.backlog.remove(i)
    }

    /// Every frame that arrives within `wait` and matches `pred` (the backlog included).
    pub async fn collect_for(
        &mut self,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut got = Vec::new();
        while let Some(frame) = self.try_wait_for(wait, &pred).await {
            got.push(frame);
        }
        got
    }

    /// The next text frame from the socket, parsed; None once the connection is closed.
    async fn next_frame(&mut self) -> Option<Value> {
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"));
                }
                Ok(Message::Close(frame)) => {
                    self.closed = Some(frame);
                    return None;
                }
                Ok(_) => continue,
                Err(_) => {
                    self.closed.get_or_insert(None);
                    return None;
                }
            }
        }
    }

    /// Waits until the server closes the connection; returns the close code if any.
    pub async fn wait_closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            match tokio::time::timeout_at(deadline, self.next_frame()).await {
                Ok(Some(frame)) => self.backlog.push_back(frame),
                Ok(None) => break,
                Err(_) => panic!("connection was not closed"),
            }
        }
        self.closed.clone().flatten().map(|f| u16::from(f.code))
    }

    /// Sends a message and waits for its `sent`.
    pub async fn send_message(&mut self, chat_id: &str, client_msg_id: &str, body: &str) -> Value {
        let reply = self
            .request(json!({"type": "send", "chat_id": chat_id, "client_msg_id": client_msg_id, "body": body}))
            .await;
        assert_eq!(reply["type"], "sent", "send failed: {reply}");
        reply
    }

    /// Sends until acked, retrying `unavailable` answers with the same client_msg_id (the
    /// client's side of guarantee 2). None when the connection dies meanwhile.
    pub async fn send_retrying(
        &mut self,
        chat_id: &str,
        client_msg_id: &str,
        body: &str,
        deadline: Duration,
    ) -> Option<Value> {
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            let id = self.id();
            let frame = json!({"type": "send", "id": id, "chat_id": chat_id, "client_msg_id": client_msg_id, "body": body});
            if !self.try_send_json(frame).await {
                return None;
            }
            let reply = self.try_wait_for(WAIT, |f| f["re"] == id.as_str()).await?;
            match (reply["type"].as_str(), reply["code"].as_str()) {
                (Some("sent"), _) => return Some(reply),
                (Some("error"), Some("unavailable")) if tokio::time::Instant::now() < give_up => {
                    self.retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => panic!("send {client_msg_id} failed for good: {reply}"),
            }
        }
    }

    /// Sends `count` messages without waiting (client_msg_ids `{prefix}{i}`), then returns
    /// each one's reply, in order: `sent` or `error`.
    pub async fn send_pipelined(
        &mut self,
        chat_id: &str,
        prefix: &str,
        count: usize,
        body: &str,
    ) -> Vec<Value> {
        let ids: Vec<String> = (0..count).map(|_| self.id()).collect();
        for (i, id) in ids.iter().enumerate() {
            self.send_json(json!({"type": "send", "id": id, "chat_id": chat_id, "client_msg_id": format!("{prefix}{i}"), "body": body}))
                .await;
        }
        let mut replies = Vec::with_capacity(count);
        for id in &ids {
            replies.push(self.reply_to(id).await);
        }
        replies
    }

    /// Runs `sync` to completion from `cursors`, returning every `msg` and the last `synced`.
    pub async fn sync_all(
        &mut self,
        mut cursors: serde_json::Map<String, Value>,
        limit: u32,
    ) -> (Vec<Value>, Value) {
        let mut messages = Vec::new();
        loop {
            let id = self.id();
            self.send_json(json!({"type": "sync", "id": id, "cursors": cursors, "limit": limit}))
                .await;
            // Sync output precedes its `synced`; live frames may interleave and are kept too.
            let synced = self.reply_to(&id).await;
            assert_eq!(synced["type"], "synced", "sync failed: {synced}");
            let batch: Vec<Value> = self
                .backlog
                .iter()
                .filter(|f| f["type"] == "msg")
                .cloned()
                .collect();
            self.backlog.retain(|f| f["type"] != "msg");
            for m in &batch {
                let chat = m["chat_id"].as_str().unwrap().to_owned();
                let seq = m["seq"].as_u64().unwrap();
                let cur = cursors.get(&chat).and_then(Value::as_u64).unwrap_or(0);
                cursors.insert(chat, json!(cur.max(seq)));
            }
            messages.extend(batch);
            if synced["complete"] == true {
                return (messages, synced);
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }

    /// Closes from the client side (code 1000) and returns the code of the server's
    /// answering close frame; None when the server dropped the connection without one.
    pub async fn close_and_await_answer(mut self) -> Option<u16> {
        let normal = CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        };
        self.socket.close(Some(normal)).await.ok()?;
        self.closed = None;
        self.wait_closed().await
    }
}
