//! Minting and verifying the HS256 tokens that identify users and devices.

use std::collections::HashSet;
use std::time::Duration;

use chat_protocol::ids::{is_valid_id, DeviceId, UserId, DEFAULT_DEVICE};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims a token carries. Only `sub` is required.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    /// The device named by the token, if it names one.
    pub device_id: Option<DeviceId>,
}

impl Identity {
    /// The device to use: the explicit one (query parameter), else the token's, else "default".
    pub fn device_or_default(&self, explicit: Option<&str>) -> DeviceId {
        DeviceId::from(
            explicit
                .or(self.device_id.as_deref())
                .unwrap_or(DEFAULT_DEVICE),
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("invalid user id in token")]
    BadUserId,
    #[error("invalid device id")]
    BadDeviceId,
}

/// The signing and verification keys for one HS256 secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Keys for `secret`; an empty secret is refused.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::Invalid("empty secret".into()));
        }
        let invalid = |e: jsonwebtoken::errors::Error| AuthError::Invalid(e.to_string());
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` and `nbf` are optional in protocol v1; they are checked when present.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(JwtKeys {
            encoding: EncodingKey::from_secret(secret).map_err(invalid)?,
            decoding: DecodingKey::from_secret(secret).map_err(invalid)?,
            validation,
        })
    }

    /// A token for `user` (and `device`), valid for `ttl` from now, or forever when `None`.
    pub fn mint(
        &self,
        user: &str,
        device: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<String, AuthError> {
        if !is_valid_id(user) {
            return Err(AuthError::BadUserId);
        }
        if device.is_some_and(|d| !is_valid_id(d)) {
            return Err(AuthError::BadDeviceId);
        }
        let now = unix_now();
        let claims = Claims {
            sub: user.to_owned(),
            device: device.map(str::to_owned),
            exp: ttl.map(|t| now + t.as_secs()),
            nbf: None,
            iat: Some(now),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims; tests use it to make expired or malformed tokens.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Checks signature, `exp`/`nbf` and the id formats.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid(e.to_string()),
                }
            })?;
        let claims = data.claims;
        if !is_valid_id(&claims.sub) {
            return Err(AuthError::BadUserId);
        }
        if claims.device.as_deref().is_some_and(|d| !is_valid_id(d)) {
            return Err(AuthError::BadDeviceId);
        }
        Ok(Identity {
            user_id: claims.sub.into(),
            device_id: claims.device.map(DeviceId::from),
        })
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_user_and_device() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let token = keys.mint("alice", Some("phone"), None).unwrap();
        let id = keys.verify(&token).unwrap();
        assert_eq!(id.user_id, "alice");
        assert_eq!(id.device_id.as_deref(), Some("phone"));
    }

    #[test]
    fn refuses_other_secret_expired_and_bad_ids() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let other = JwtKeys::new(b"other").unwrap();
        let token = other.mint("alice", None, None).unwrap();
        assert!(matches!(keys.verify(&token), Err(AuthError::Invalid(_))));

        let expired = keys
            .sign(&Claims {
                sub: "alice".into(),
                device: None,
                exp: Some(unix_now() - 3600),
                nbf: None,
                iat: None,
            })
            .unwrap();
        assert_eq!(keys.verify(&expired), Err(AuthError::Expired));

        let bad_user = keys
            .sign(&Claims {
                sub: "no spaces allowed".into(),
                device: None,
                exp: None,
                nbf: None,
                iat: None,
            })
            .unwrap();
        assert_eq!(keys.verify(&bad_user), Err(AuthError::BadUserId));
        assert!(keys.verify("garbage").is_err());
    }

    #[test]
    fn not_yet_valid_tokens_are_refused() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let future = keys
            .sign(&Claims {
                sub: "alice".into(),
                device: None,
                exp: None,
                nbf: Some(unix_now() + 3600),
                iat: None,
            })
            .unwrap();
        assert!(keys.verify(&future).is_err());
    }
}
