//! Test kit for the integration suites: launch `chatd` in-process on port 0 or as a real
//! process, and talk to it with real WebSocket and HTTP clients.

mod cluster;
mod http;
mod memory;
mod otlp;
mod process;
mod server;
mod ws;

pub use cluster::{binary, Cluster, INTERNAL_SECRET, LEASE_TTL, PARTITIONS, PRESENCE_TTL};
pub use http::Http;
pub use memory::Usage;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::{ChatdProcess, ServiceProcess};
pub use server::TestServer;
pub use ws::{WsClient, WsError};

/// The secret every test server is started with.
pub const TEST_SECRET: &str = "test-secret-not-for-production";

/// A token for `user` (and `device`) signed with `TEST_SECRET`.
pub fn token(user: &str, device: Option<&str>) -> String {
    chat_auth::JwtKeys::new(TEST_SECRET.as_bytes())
        .expect("test secret")
        .mint(user, device, std::time::Duration::from_secs(3600))
        .expect("valid user id")
}

/// Logs only when TEST_LOG is set, so test output stays readable.
pub fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        chat_ops::init_logging(chat_ops::LogFormat::Text);
    }
}
