//! Operational plumbing every binary shares: log setup, the shutdown signal, the process's
//! Prometheus recorder, and the `/healthz`, `/readyz`, `/metrics` endpoints.
#![forbid(unsafe_code)]

mod health;
mod logging;
pub mod metrics;
mod naming;
mod serve;
mod signals;

pub use health::{ops_routes, ready_check, ReadyCheck};
pub use logging::init_logging;
pub use naming::instance_name;
pub use serve::{bind, serve_until};
pub use signals::cancel_on_signal;
