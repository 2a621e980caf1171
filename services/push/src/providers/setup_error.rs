//! Why a provider could not be set up from its settings.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Google credentials for FCM")]
    GoogleCredentials(#[source] gcp_auth::Error),
    #[error("{what}: unusable key")]
    Key {
        what: &'static str,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("HTTP/2 client")]
    Client(#[source] reqwest::Error),
    #[error("APNs needs CHAT_APNS_KEY_FILE, CHAT_APNS_KEY_ID, CHAT_APNS_TEAM_ID and CHAT_APNS_TOPIC together")]
    IncompleteApns,
}
