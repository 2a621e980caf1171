//! Provider settings as flags and env vars, and building the configured providers.

use super::SetupError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{ApnsConfig, ApnsProvider, FcmConfig, FcmCredentials, FcmProvider};
use crate::worker::PushProvider;

#[derive(Debug, Clone, clap::Args)]
pub struct ProviderSettings {
    /// APNs token-auth key (.p8). APNs is off unless this, the key id, team id and topic are set.
    #[arg(long, env = "CHAT_APNS_KEY_FILE")]
    pub apns_key_file: Option<PathBuf>,

    /// APNs key id (the `kid` of provider tokens).
    #[arg(long, env = "CHAT_APNS_KEY_ID")]
    pub apns_key_id: Option<String>,

    /// Apple developer team id (the `iss` of provider tokens).
    #[arg(long, env = "CHAT_APNS_TEAM_ID")]
    pub apns_team_id: Option<String>,

    /// The app's bundle id (`apns-topic`).
    #[arg(long, env = "CHAT_APNS_TOPIC")]
    pub apns_topic: Option<String>,

    /// APNs endpoint; `https://api.sandbox.push.apple.com` for development builds. An
    /// `http://` URL speaks HTTP/2 without TLS (test servers).
    #[arg(
        long,
        env = "CHAT_APNS_ENDPOINT",
        default_value = "https://api.push.apple.com"
    )]
    pub apns_endpoint: String,

    /// Google service-account JSON with access to FCM. FCM is off unless this or
    /// `CHAT_FCM_APPLICATION_DEFAULT` is set.
    #[arg(
        long,
        env = "CHAT_FCM_CREDENTIALS_FILE",
        conflicts_with = "fcm_application_default"
    )]
    pub fcm_credentials_file: Option<PathBuf>,

    /// FCM with Google's Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's user credentials, or the metadata server (GCE, GKE Workload Identity).
    #[arg(long, env = "CHAT_FCM_APPLICATION_DEFAULT", default_value_t = false)]
    pub fcm_application_default: bool,

    /// The Firebase project to send through (default: the credentials' project).
    #[arg(long, env = "CHAT_FCM_PROJECT_ID")]
    pub fcm_project_id: Option<String>,

    /// FCM endpoint. An `http://` URL speaks HTTP/2 without TLS (test servers).
    #[arg(
        long,
        env = "CHAT_FCM_ENDPOINT",
        default_value = "https://fcm.googleapis.com"
    )]
    pub fcm_endpoint: String,

    /// Deadline of one provider request.
    #[arg(long, env = "CHAT_PUSH_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub push_timeout: Duration,
}

impl ProviderSettings {
    /// The providers whose settings are complete; errors for half-configured ones.
    pub async fn build(&self) -> Result<Vec<Arc<dyn PushProvider>>, SetupError> {
        let mut providers: Vec<Arc<dyn PushProvider>> = Vec::new();
        let apns = (
            &self.apns_key_file,
            &self.apns_key_id,
            &self.apns_team_id,
            &self.apns_topic,
        );
        match apns {
            (Some(file), Some(key_id), Some(team_id), Some(topic)) => {
                let key_pem = std::fs::read_to_string(file).map_err(|source| SetupError::Read {
                    path: file.clone(),
                    source,
                })?;
                providers.push(Arc::new(ApnsProvider::new(ApnsConfig {
                    key_pem,
                    key_id: key_id.clone(),
                    team_id: team_id.clone(),
                    topic: topic.clone(),
                    endpoint: self.apns_endpoint.clone(),
                    timeout: self.push_timeout,
                })?));
            }
            (None, None, None, None) => {}
            _ => return Err(SetupError::IncompleteApns),
        }
        let credentials = match &self.fcm_credentials_file {
            Some(file) => Some(FcmCredentials::ServiceAccount(
                std::fs::read_to_string(file).map_err(|source| SetupError::Read {
                    path: file.clone(),
                    source,
                })?,
            )),
            None if self.fcm_application_default => Some(FcmCredentials::ApplicationDefault),
            None => None,
        };
        if let Some(credentials) = credentials {
            providers.push(Arc::new(
                FcmProvider::new(FcmConfig {
                    credentials,
                    project_id: self.fcm_project_id.clone(),
                    endpoint: self.fcm_endpoint.clone(),
                    timeout: self.push_timeout,
                })
                .await?,
            ));
        }
        Ok(providers)
    }
}
