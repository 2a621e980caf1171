//! The chat service: chats and membership, the per-chat sequencer that gives every
//! message its place in the chat's order, watermarks and receipts, and fan-out of events
//! to the bus. `ChatApi` is the gateway's handle on it.
#![forbid(unsafe_code)]

mod api;
mod cache;
mod config;
mod error;
mod fanout;
pub mod lease;
pub mod ownership;
pub mod process;
mod queued;
pub mod rpc;
mod sequencer;
mod service;

pub use api::{Caller, ChatApi, CreateChat, HistoryQuery, SendOutcome, SendRequest, SyncResult};
pub use config::ChatConfig;
pub use error::ChatError;
pub use ownership::{partition_of, Ownership, OwnsEverything};
pub use service::ChatService;
