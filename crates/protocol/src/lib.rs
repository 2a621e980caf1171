//! Protocol v1: the wire types clients and servers exchange, and their codec. No I/O here.
#![forbid(unsafe_code)]

pub mod decode;
pub mod error;
pub mod frames;
pub mod fuzzing;
pub mod ids;
#[cfg(any(feature = "sqlite", feature = "scylla"))]
mod ids_db;
mod message_frames;
pub mod objects;
pub mod rest;

pub use decode::{decode_client_frame, DecodeError};
pub use error::ErrorCode;
pub use frames::{ClientFrame, ServerFrame};
pub use objects::*;

/// The protocol version this crate speaks; sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch, from the server clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
