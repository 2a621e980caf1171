//! The scaled-out mode as separate processes on loopback — redis-server, two gateways, two
//! chat-service instances, presence and push — behaving like chatd and surviving the loss
//! of any one process.

mod basics;
mod failures;
mod handover;
mod internal_api;
mod tracing;
