//! Liveness, readiness and the Prometheus scrape endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::state::AppState;

pub(crate) async fn live() -> &'static str {
    "ok"
}

/// Ready when not draining and the backends answer.
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    if state.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".into());
    }
    match state.chat.ready().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.client_message()),
    }
}

pub(crate) async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        chat_ops::metrics::render(),
    )
}
