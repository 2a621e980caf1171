//! The chat service: chats and membership, the per-chat sequencer that gives every
//! message its place in the chat's order, watermarks and receipts, and fan-out of events
//! to the bus. It implements `chat_api::ChatApi`; in the scaled-out mode it serves that
//! contract over gRPC (`chat_rpc::server`) and orders only the partitions it leases.
#![forbid(unsafe_code)]

mod blocks;
mod cache;
mod config;
mod errors;
mod fanout;
pub mod lease;
mod mutations;
pub mod ownership;
pub mod process;
mod sequencer;
mod service;

pub use config::ChatConfig;
pub use ownership::{AppendBarrier, Ownership, OwnsEverything};
pub use service::ChatService;
