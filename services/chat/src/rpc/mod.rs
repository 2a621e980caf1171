//! The chat service's internal API (v1), for gateways in the scaled-out mode: HTTP/JSON
//! under `/internal/v1/`. `server` exposes a `ChatApi`; `client::RemoteChat` is a
//! `ChatApi` that routes each call to the instance owning the chat.

pub mod client;
mod routes;
pub mod server;
mod wire;

pub use client::{RemoteChat, RemoteChatConfig};
pub use server::rpc_routes;
