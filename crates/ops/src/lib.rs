//! Operational plumbing every binary shares: log and trace setup, the shutdown signal, the process's
//! Prometheus recorder, the `/healthz`, `/readyz`, `/metrics` endpoints, and serving HTTP
//! with the bounds every listener needs.
#![forbid(unsafe_code)]

mod common;
mod defaults;
mod health;
pub mod http;
mod kept_counter;
mod log_every;
mod logging;
pub mod metrics;
mod naming;
mod serve;
mod signals;
pub mod trace_context;

pub use common::CommonArgs;
pub use defaults::defaults_of;
pub use health::{ops_routes, ready_check, ReadyCheck};
pub use kept_counter::KeptCounter;
pub use log_every::LogEvery;
pub use logging::{
    exporting, init_logging, init_telemetry, install_crypto_provider, LogFormat, Telemetry,
    TRACE_TARGET,
};
pub use naming::instance_name;
pub use serve::{bind, serve_until};
pub use signals::cancel_on_signal;
