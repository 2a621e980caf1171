//! APNs with token-based authentication: an ES256 provider token signed with the team's
//! .p8 key (renewed before Apple's one-hour limit), the payload built with `a2`, sent to
//! `/3/device/{token}` with the apns-* headers.

use super::SetupError;
use std::sync::Mutex;
use std::time::Duration;

use a2::{DefaultNotificationBuilder, NotificationBuilder, NotificationOptions};
use async_trait::async_trait;
use chat_protocol::PushPlatform;
use chat_store::PushDevice;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::http::{http2_client, retry_after, unix_now};
use super::Notification;
use crate::worker::{PushProvider, SendError};

/// Apple requires a new provider token at least hourly and rejects refreshing more often
/// than every 20 minutes; 50 minutes sits between.
const TOKEN_LIFETIME_SECS: u64 = 50 * 60;

#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// The .p8 key (PKCS#8 PEM).
    pub key_pem: String,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id.
    pub topic: String,
    /// `https://api.push.apple.com` in production.
    pub endpoint: String,
    pub timeout: Duration,
}

pub struct ApnsProvider {
    config: ApnsConfig,
    key: EncodingKey,
    client: reqwest::Client,
    /// (issued at, token)
    token: Mutex<Option<(u64, String)>>,
}

#[derive(Serialize)]
struct ProviderClaims<'a> {
    iss: &'a str,
    iat: u64,
}

impl ApnsProvider {
    pub fn new(config: ApnsConfig) -> Result<Self, SetupError> {
        let key = EncodingKey::from_ec_pem(config.key_pem.as_bytes()).map_err(|source| {
            SetupError::Key {
                what: "APNs",
                source,
            }
        })?;
        let client = http2_client(&config.endpoint, config.timeout)?;
        Ok(ApnsProvider {
            config,
            key,
            client,
            token: Mutex::new(None),
        })
    }

    /// The current provider token, signing a new one when it is due.
    fn provider_token(&self, force_new: bool) -> Result<String, SendError> {
        let now = unix_now();
        let mut cached = self.token.lock().expect("token lock");
        if let Some((issued, token)) = cached.as_ref() {
            if !force_new && now < issued + TOKEN_LIFETIME_SECS {
                return Ok(token.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.config.key_id.clone());
        let claims = ProviderClaims {
            iss: &self.config.team_id,
            iat: now,
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| SendError::Permanent(format!("cannot sign APNs token: {e}")))?;
        *cached = Some((now, token.clone()));
        Ok(token)
    }

    fn payload(&self, device: &PushDevice, notification: &Notification) -> String {
        let mut builder = DefaultNotificationBuilder::new()
            .set_body(&notification.body)
            .set_badge(notification.badge)
            .set_sound("default");
        if let Some(title) = &notification.title {
            builder = builder.set_title(title);
        }
        let mut payload = builder.build(&device.token, NotificationOptions::default());
        let seq = notification.seq.to_string();
        let _ = payload.add_custom_data("chat_id", &notification.chat_id);
        let _ = payload.add_custom_data("seq", &seq);
        serde_json::to_string(&payload).expect("APNs payloads serialize")
    }
}

#[async_trait]
impl PushProvider for ApnsProvider {
    fn platform(&self) -> PushPlatform {
        PushPlatform::Apns
    }

    async fn send(
        &self,
        device: &PushDevice,
        notification: &Notification,
    ) -> Result<(), SendError> {
        let url = format!(
            "{}/3/device/{}",
            self.config.endpoint.trim_end_matches('/'),
            device.token
        );
        let body = self.payload(device, notification);
        let mut force_new_token = false;
        // One retry with a fresh provider token if Apple says ours expired.
        for _ in 0..2 {
            let token = self.provider_token(force_new_token)?;
            let response = self
                .client
                .post(&url)
                .header("authorization", format!("bearer {token}"))
                .header("apns-topic", &self.config.topic)
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-collapse-id", notification.chat_id.as_str())
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| SendError::Transient {
                    reason: format!("APNs request: {e}"),
                    retry_after: None,
                })?;
            let status = response.status().as_u16();
            if status == 200 {
                return Ok(());
            }
            let wait = retry_after(&response);
            let reason = response
                .json::<a2::ErrorBody>()
                .await
                .map(|b| format!("{:?}", b.reason))
                .unwrap_or_default();
            match (status, reason.as_str()) {
                // Only Apple's own reasons remove a token, never a bare status.
                (410, "Unregistered")
                | (400, "BadDeviceToken")
                | (400, "DeviceTokenNotForTopic") => return Err(SendError::BadToken),
                (403, "ExpiredProviderToken") if !force_new_token => force_new_token = true,
                (429, _) | (500..=599, _) => {
                    return Err(SendError::Transient {
                        reason: format!("APNs {status} {reason}"),
                        retry_after: wait,
                    });
                }
                _ => return Err(SendError::Permanent(format!("APNs {status} {reason}"))),
            }
        }
        Err(SendError::Transient {
            reason: "APNs keeps refusing fresh provider tokens".into(),
            retry_after: None,
        })
    }
}
