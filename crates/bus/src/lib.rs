//! The bus: how events reach the gateways that hold the recipients' connections. Topics
//! are typed — a user's events, a large group's events, a user's presence — and so are the
//! events: a server frame for the subscribed connections, or a control event telling a
//! gateway to follow a large group's topic for one of its users. The bus is a fast path
//! that may drop events; clients recover anything missed with `sync`.
#![forbid(unsafe_code)]

mod local;
mod redis_bus;
mod topic;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;
use chat_protocol::ids::{ChatId, UserId};
use uuid::Uuid;

pub use local::LocalBus;
pub use redis_bus::RedisBus;
pub use topic::Topic;

/// One server frame for the connections subscribed to a topic: serialized once, shared by
/// every recipient, plus who must not get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The JSON text of the server frame.
    pub frame: Bytes,
    /// The session that caused the event and already has its outcome (e.g. the sender of a message).
    pub skip_session: Option<Uuid>,
    /// A user none of whose connections get the event (e.g. the typist of a `typing`).
    pub skip_user: Option<UserId>,
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

/// What travels on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A frame for the topic's connections.
    Frame(BusMessage),
    /// On a user's topic: the user is now in (or no longer in) a large group, whose events
    /// come on the group's topic. Only the chat service decides what "large" is.
    LargeGroup { chat_id: ChatId, member: bool },
    /// On a user's topic: that user may no longer see `user`'s presence (they share no
    /// chat any more); their watches of `user` end at once.
    PresenceRevoked { user: UserId },
}

/// Called for every event on a subscribed topic, with the topic it came on.
pub type Handler = Arc<dyn Fn(&Topic, &BusEvent) + Send + Sync>;

/// Called when events on subscribed topics may have been lost: the bus was cut off from
/// its broker and has just subscribed again.
pub type GapHandler = Arc<dyn Fn() + Send + Sync>;

/// Publish/subscribe between chat services and gateways. Publishing never blocks.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, topic: &Topic, event: BusEvent);
    /// Starts delivering `topic` to the handler. Subscribing twice is the same as once.
    fn subscribe(&self, topic: &Topic);
    fn unsubscribe(&self, topic: &Topic);
    /// Sets the one handler that receives this node's subscribed topics.
    fn set_handler(&self, handler: Handler);
    /// Sets what to do after a gap (see `GapHandler`): subscribers recover what they
    /// missed from the store. A bus that cannot lose events never calls it.
    fn set_gap_handler(&self, _handler: GapHandler) {}
}
