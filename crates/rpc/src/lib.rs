//! The internal API over gRPC (tonic, HTTP/2): `server::router` serves any `ChatApi` as
//! the `chat.v1.Chat` service; `RemoteChat` is the `ChatApi` gateways use, routing each
//! call to the chat-service instance that owns the chat and keeping one ordered send
//! stream per instance. Every call is authenticated with a service token (`auth`).
#![forbid(unsafe_code)]

pub mod auth;
mod client;
mod convert;
mod limits;
pub mod pb;
pub mod placement;
pub mod server;

pub use auth::{AuthSetupError, Credentials, InternalAuth, InternalAuthArgs};
pub use client::{RemoteChat, RemoteChatConfig};
pub use convert::error_from_status;
pub use limits::RpcLimits;
