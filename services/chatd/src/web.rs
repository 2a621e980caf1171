//! The web app `chatd` serves at `/`: the files of `clients/web` and the SDK they import
//! (`clients/js/src`, at `/sdk/`), compiled into the binary (read from disk in debug
//! builds, so editing them needs no rebuild). Plain ES modules: no npm step to build it.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

// Only what a browser loads is embedded (and served): never a README, a stray editor
// file or anything else that lands in these folders.
#[derive(RustEmbed)]
#[folder = "../../clients/web"]
#[include = "*.html"]
#[include = "*.js"]
#[include = "*.css"]
#[include = "*.svg"]
#[include = "*.png"]
struct WebApp;

#[derive(RustEmbed)]
#[folder = "../../clients/js/src"]
#[include = "*.js"]
struct Sdk;

pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { asset::<WebApp>("index.html") }))
        .route(
            "/app/{*path}",
            get(|Path(path): Path<String>| async move { asset::<WebApp>(&path) }),
        )
        .route(
            "/sdk/{*path}",
            get(|Path(path): Path<String>| async move { asset::<Sdk>(&path) }),
        )
}

fn asset<Files: RustEmbed>(path: &str) -> Response {
    match Files::get(path) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            file.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") | Some("webmanifest") => "application/json",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_and_the_sdk_are_embedded() {
        assert!(WebApp::get("index.html").is_some());
        assert!(Sdk::get("index.js").is_some());
        assert!(Sdk::get("storage/memory.js").is_some());
        assert!(
            WebApp::get("README.md").is_none(),
            "only browser assets are served"
        );
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
    }
}
