//! The HTTP/2 client both providers use: TLS with ALPN h2 for `https://` endpoints, HTTP/2
//! with prior knowledge for `http://` ones.

use std::time::Duration;

use super::SetupError;

pub(crate) fn http2_client(
    endpoint: &str,
    timeout: Duration,
) -> Result<reqwest::Client, SetupError> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(600));
    let builder = if endpoint.starts_with("http://") {
        builder.http2_prior_knowledge()
    } else {
        builder
    };
    builder.build().map_err(SetupError::Client)
}

/// `Retry-After` in seconds, when the response carries one.
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
