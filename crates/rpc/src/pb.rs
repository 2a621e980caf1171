//! The generated protobuf types and the tonic client and server of `chat.v1.Chat`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("chat.v1");

/// The compiled .proto, served by the reflection service (for grpcurl).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/chat_descriptor.bin"));
