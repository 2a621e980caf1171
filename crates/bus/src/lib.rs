//! The bus: how events reach the gateways that hold the recipients' connections. Topics
//! are per user (`user:{id}`), per large group (`group:{chat_id}`) and per watched user's
//! presence (`presence:{id}`). The bus
//! is a fast path that may drop events; clients recover anything missed with `sync`.
#![forbid(unsafe_code)]

mod local;
mod redis_bus;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

pub use local::LocalBus;
pub use redis_bus::RedisBus;

/// One event for the connections subscribed to a topic: a server frame serialized once,
/// shared by every recipient, plus who must not get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The JSON text of the server frame.
    pub frame: Bytes,
    /// The session that caused the event and already has its outcome (e.g. the sender of a message).
    pub skip_session: Option<Uuid>,
    /// A user none of whose connections get the event (e.g. the typist of a `typing`).
    pub skip_user: Option<String>,
}

impl BusMessage {
    pub fn to_all(frame: impl Into<Bytes>) -> Self {
        BusMessage {
            frame: frame.into(),
            skip_session: None,
            skip_user: None,
        }
    }
}

/// Called for every message on a subscribed topic, with the topic it came on.
pub type Handler = Arc<dyn Fn(&str, &BusMessage) + Send + Sync>;

/// Publish/subscribe between chat services and gateways. Publishing never blocks.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, topic: &str, message: BusMessage);
    /// Starts delivering `topic` to the handler. Subscribing twice is the same as once.
    fn subscribe(&self, topic: &str);
    fn unsubscribe(&self, topic: &str);
    /// Sets the one handler that receives this node's subscribed topics.
    fn set_handler(&self, handler: Handler);
}

/// The topic of every event for a user's devices.
pub fn user_topic(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The topic of a large group's events, published once for all its members.
pub fn group_topic(chat_id: &str) -> String {
    format!("group:{chat_id}")
}

/// The topic of a user's presence changes.
pub fn presence_topic(user_id: &str) -> String {
    format!("presence:{user_id}")
}
