//! FCM HTTP v1: an OAuth2 access token from Google credentials through `gcp_auth` (a
//! service-account key file, or Application Default Credentials: the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user credentials, or the metadata server on
//! GCE and GKE with Workload Identity), then `POST /v1/projects/{project}/messages:send`.

use super::SetupError;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::PushPlatform;
use chat_store::PushDevice;
use gcp_auth::{CustomServiceAccount, TokenProvider};
use serde_json::json;
use tokio::sync::Mutex;

use super::http::{http2_client, retry_after};
use super::Notification;
use crate::worker::{PushProvider, SendError};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Where FCM access tokens come from.
#[derive(Clone)]
pub enum FcmCredentials {
    /// A service-account key file's JSON; tokens from its `token_uri`.
    ServiceAccount(String),
    /// Application Default Credentials, found as Google's libraries find them.
    ApplicationDefault,
}

#[derive(Clone)]
pub struct FcmConfig {
    pub credentials: FcmCredentials,
    /// The Firebase project; by default the credentials' own.
    pub project_id: Option<String>,
    /// `https://fcm.googleapis.com` in production.
    pub endpoint: String,
    pub timeout: Duration,
}

pub struct FcmProvider {
    config: FcmConfig,
    project_id: String,
    client: reqwest::Client,
    /// The token source (it caches tokens until shortly before they expire) and the last
    /// token it gave, to count fetches.
    tokens: Mutex<(Arc<dyn TokenProvider>, String)>,
}

/// A token source for `credentials` (reading the environment for ADC).
async fn token_source(credentials: &FcmCredentials) -> Result<Arc<dyn TokenProvider>, SetupError> {
    Ok(match credentials {
        FcmCredentials::ServiceAccount(json) => {
            Arc::new(CustomServiceAccount::from_json(json).map_err(SetupError::GoogleCredentials)?)
        }
        FcmCredentials::ApplicationDefault => gcp_auth::provider()
            .await
            .map_err(SetupError::GoogleCredentials)?,
    })
}

impl FcmProvider {
    pub async fn new(config: FcmConfig) -> Result<Self, SetupError> {
        let source = token_source(&config.credentials).await?;
        let project_id = match &config.project_id {
            Some(project) => project.clone(),
            None => source
                .project_id()
                .await
                .map_err(SetupError::GoogleCredentials)?
                .to_string(),
        };
        let client = http2_client(&config.endpoint, config.timeout)?;
        Ok(FcmProvider {
            config,
            project_id,
            client,
            tokens: Mutex::new((source, String::new())),
        })
    }

    /// A valid access token. After Google `refused` one, the source is made anew (it would
    /// hand out its cached token again), unless another send has done so already: sends
    /// refused together renew once. The credentials were good at start, so a failure to
    /// renew (a metadata server timing out) is worth another attempt later.
    async fn access_token(&self, refused: Option<&str>) -> Result<String, SendError> {
        let mut tokens = self.tokens.lock().await;
        if refused.is_some_and(|refused| refused == tokens.1) {
            tokens.0 =
                token_source(&self.config.credentials)
                    .await
                    .map_err(|e| SendError::Transient {
                        reason: format!("FCM credentials: {e}"),
                        retry_after: None,
                    })?;
        }
        let token = tokens
            .0
            .token(&[SCOPE])
            .await
            .map_err(|e| SendError::Transient {
                reason: format!("FCM access token: {e}"),
                retry_after: None,
            })?;
        if token.as_str() != tokens.1 {
            metrics::counter!("chat_push_fcm_tokens_fetched_total").increment(1);
            tokens.1 = token.as_str().to_owned();
        }
        Ok(tokens.1.clone())
    }

    fn message(device: &PushDevice, notification: &Notification) -> serde_json::Value {
        let mut shown = json!({"body": notification.body});
        if let Some(title) = &notification.title {
            shown["title"] = json!(title);
        }
        json!({
            "message": {
                "token": device.token,
                "notification": shown,
                "data": {"chat_id": notification.chat_id, "seq": notification.seq.to_string()},
                "android": {
                    "collapse_key": notification.chat_id,
                    "notification": {"notification_count": notification.badge, "tag": notification.chat_id},
                },
                "apns": {
                    "headers": {"apns-collapse-id": notification.chat_id},
                    "payload": {"aps": {"badge": notification.badge}},
                },
            }
        })
    }
}

/// The error status and FCM error code of a failed send, from its JSON body.
fn fcm_error(body: &serde_json::Value) -> (String, String) {
    let error = &body["error"];
    let status = error["status"].as_str().unwrap_or_default().to_owned();
    let code = details(body)
        .find_map(|x| x["errorCode"].as_str())
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

fn details(body: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    body["error"]["details"].as_array().into_iter().flatten()
}

/// Whether Google said the token itself is dead: `UNREGISTERED`, or `INVALID_ARGUMENT`
/// with a field violation on `message.token`. A bare 404 (a wrong endpoint, a proxy) or
/// an `INVALID_ARGUMENT` about the payload is not, and removes nothing.
fn token_is_dead(body: &serde_json::Value) -> bool {
    let (status, code) = fcm_error(body);
    code == "UNREGISTERED"
        || (status == "INVALID_ARGUMENT"
            && details(body)
                .filter_map(|d| d["fieldViolations"].as_array())
                .flatten()
                .any(|v| v["field"].as_str() == Some("message.token")))
}

#[async_trait]
impl PushProvider for FcmProvider {
    fn platform(&self) -> PushPlatform {
        PushPlatform::Fcm
    }

    async fn send(
        &self,
        device: &PushDevice,
        notification: &Notification,
    ) -> Result<(), SendError> {
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.endpoint.trim_end_matches('/'),
            self.project_id
        );
        let body = Self::message(device, notification);
        let mut refused: Option<String> = None;
        // One retry with a fresh access token if Google says ours is no longer good.
        for _ in 0..2 {
            let token = self.access_token(refused.as_deref()).await?;
            let response = self
                .client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .map_err(|e| SendError::Transient {
                    reason: format!("FCM request: {e}"),
                    retry_after: None,
                })?;
            let status = response.status().as_u16();
            if status == 200 {
                return Ok(());
            }
            let wait = retry_after(&response);
            let error: serde_json::Value = response.json().await.unwrap_or_default();
            if token_is_dead(&error) {
                return Err(SendError::BadToken);
            }
            let (error_status, code) = fcm_error(&error);
            match (status, error_status.as_str(), code.as_str()) {
                (401, _, _) if refused.is_none() => refused = Some(token),
                (429, _, _) | (500..=599, _, _) => {
                    return Err(SendError::Transient {
                        reason: format!("FCM {status} {error_status} {code}"),
                        retry_after: wait,
                    });
                }
                _ => {
                    return Err(SendError::Permanent(format!(
                        "FCM {status} {error_status} {code}"
                    )))
                }
            }
        }
        Err(SendError::Transient {
            reason: "FCM keeps refusing fresh access tokens".into(),
            retry_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_googles_explicit_answers_mean_a_dead_token() {
        let unregistered = json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
        let bad_token = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "message.token", "description": "not a valid FCM registration token"}]}]}});
        let bad_payload = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "message.android.ttl"}]}]}});
        let bare_404 = serde_json::Value::Null;
        let not_found = json!({"error": {"code": 404, "status": "NOT_FOUND"}});
        assert!(token_is_dead(&unregistered));
        assert!(token_is_dead(&bad_token));
        assert!(!token_is_dead(&bad_payload));
        assert!(!token_is_dead(&bare_404));
        assert!(!token_is_dead(&not_found));
    }
}
