//! Push providers: APNs (token auth, payloads built with `a2`) and FCM HTTP v1 (Google
//! OAuth2 through `gcp_auth`), both over our own HTTP/2 client so that tests exercise the transport
//! production uses. An `http://` endpoint speaks HTTP/2 without TLS (local fakes).

mod apns;
mod fcm;
mod http;
mod settings;
mod setup_error;

pub use apns::{ApnsConfig, ApnsProvider};
pub use fcm::{FcmConfig, FcmCredentials, FcmProvider};
pub use settings::ProviderSettings;
pub use setup_error::SetupError;

/// What a provider is asked to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub chat_id: chat_protocol::ids::ChatId,
    pub seq: u64,
    /// Shown as the title when previews are on (the sender).
    pub title: Option<String>,
    pub body: String,
    /// Total unread messages of the user across chats.
    pub badge: u32,
}
