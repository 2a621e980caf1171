//! Fake push providers for tests: HTTP/2 servers on loopback that check every request the
//! way APNs and FCM do (paths, headers, signed tokens) and answer with scripted replies, so
//! the worker's reactions to each error class can be tested through the real transport.
#![forbid(unsafe_code)]

mod apns;
mod fcm;
mod script;

pub use apns::{ApnsReply, ApnsRequest, FakeApns};
pub use fcm::{FakeFcm, FcmReply, FcmRequest};

/// Binds a loopback listener and serves `router` on it (HTTP/1 and HTTP/2 prior knowledge).
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake provider");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}
