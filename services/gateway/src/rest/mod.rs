//! The REST API of protocol v1, plus health and readiness endpoints; `/metrics` is served
//! on its own listener (`metrics_routes`).

mod blocks;
mod chats;
mod dev;
mod devices;
mod health;
mod messages;
mod presence;
mod privacy;

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::state::AppState;

pub(crate) fn routes(dev_login: bool) -> Router<AppState> {
    let router = if dev_login {
        Router::new().route("/v1/dev/token", post(dev::token))
    } else {
        Router::new()
    };
    router
        .route("/v1/chats", post(chats::create).get(chats::list))
        .route("/v1/chats/{chat_id}", get(chats::get_one))
        .route("/v1/chats/{chat_id}/members", post(chats::add_members))
        .route(
            "/v1/chats/{chat_id}/members/{user_id}",
            delete(chats::remove_member),
        )
        .route(
            "/v1/chats/{chat_id}/messages",
            get(messages::list).post(messages::send),
        )
        .route("/v1/devices", post(devices::register))
        .route("/v1/devices/{device_id}", delete(devices::unregister))
        .route("/v1/presence", get(presence::query))
        .route("/v1/me/privacy", get(privacy::get).put(privacy::set))
        .route("/v1/blocks", get(blocks::list))
        .route(
            "/v1/blocks/{user_id}",
            put(blocks::block).delete(blocks::unblock),
        )
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
}

/// The metrics listener's routes: `/metrics` only.
pub(crate) fn metrics_routes() -> Router {
    Router::new().route("/metrics", get(health::metrics))
}
