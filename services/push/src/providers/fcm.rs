//! FCM HTTP v1: an OAuth2 access token from the service account (JWT-bearer grant to the
//! account's `token_uri`, cached until shortly before it expires), then
//! `POST /v1/projects/{project}/messages:send`.

use super::SetupError;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::PushPlatform;
use chat_store::PushDevice;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::http::{http2_client, retry_after, unix_now};
use super::Notification;
use crate::worker::{PushProvider, SendError};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is renewed this long before Google says it expires.
const RENEW_EARLY_SECS: u64 = 60;

/// The fields of a Google service-account JSON file that FCM needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    pub token_uri: String,
}

#[derive(Debug, Clone)]
pub struct FcmConfig {
    pub account: ServiceAccount,
    /// `https://fcm.googleapis.com` in production.
    pub endpoint: String,
    pub timeout: Duration,
}

pub struct FcmProvider {
    config: FcmConfig,
    key: EncodingKey,
    client: reqwest::Client,
    /// (expires at, access token)
    access: Mutex<Option<(u64, String)>>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl FcmProvider {
    pub fn new(config: FcmConfig) -> Result<Self, SetupError> {
        let key =
            EncodingKey::from_rsa_pem(config.account.private_key.as_bytes()).map_err(|source| {
                SetupError::Key {
                    what: "FCM service account",
                    source,
                }
            })?;
        let client = http2_client(&config.endpoint, config.timeout)?;
        Ok(FcmProvider {
            config,
            key,
            client,
            access: Mutex::new(None),
        })
    }

    async fn access_token(&self, force_new: bool) -> Result<String, SendError> {
        let mut cached = self.access.lock().await;
        let now = unix_now();
        if let Some((expires, token)) = cached.as_ref() {
            if !force_new && now + RENEW_EARLY_SECS < *expires {
                return Ok(token.clone());
            }
        }
        let account = &self.config.account;
        let assertion = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &Assertion {
                iss: &account.client_email,
                scope: SCOPE,
                aud: &account.token_uri,
                iat: now,
                exp: now + 3600,
            },
            &self.key,
        )
        .map_err(|e| SendError::Permanent(format!("cannot sign FCM assertion: {e}")))?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let response = self
            .client
            .post(&account.token_uri)
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::Transient {
                reason: format!("FCM token request: {e}"),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            let transient = status == 429 || status >= 500;
            let reason = format!("FCM token endpoint answered {status}");
            return Err(if transient {
                SendError::Transient {
                    reason,
                    retry_after: retry_after(&response),
                }
            } else {
                SendError::Permanent(reason)
            });
        }
        let token: TokenResponse = response.json().await.map_err(|e| SendError::Transient {
            reason: format!("FCM token response: {e}"),
            retry_after: None,
        })?;
        *cached = Some((now + token.expires_in, token.access_token.clone()));
        metrics::counter!("chat_push_fcm_tokens_fetched_total").increment(1);
        Ok(token.access_token)
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
            self.config.account.project_id
        );
        let body = Self::message(device, notification);
        let mut force_new_token = false;
        // One retry with a fresh access token if Google says ours is no longer good.
        for _ in 0..2 {
            let token = self.access_token(force_new_token).await?;
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
                (401, _, _) if !force_new_token => force_new_token = true,
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
