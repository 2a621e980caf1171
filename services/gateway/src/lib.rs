//! The gateway: the public surface. It authenticates clients, holds their WebSocket
//! connections (one task each, with a bounded outbound queue), serves the REST API, and
//! delivers bus events to the connections of the users they concern.
#![forbid(unsafe_code)]

mod auth;
mod config;
mod error;
mod limits;
mod outbound;
pub mod privacy;
pub mod process;
mod registry;
mod rest;
mod server;
mod state;
mod ws;

pub use config::GatewayConfig;
pub use limits::{LimitsConfig, RateSpec};
pub use server::Gateway;
