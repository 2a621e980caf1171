//! Minting and verifying the HS256 tokens that identify users and devices.

use std::collections::HashSet;
use std::time::Duration;

use chat_protocol::ids::{is_valid_id, DeviceId, UserId, DEFAULT_DEVICE};
use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

/// The claims a token carries: `sub`, and `exp` unless the policy allows tokens without.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Binds the token to one device: a connection may not name another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    /// The device named by the token, if it names one.
    pub device_id: Option<DeviceId>,
}

impl Identity {
    /// The device to use: the token's, else the explicit one (query parameter), else
    /// "default". A token bound to a device refuses any other.
    pub fn device_or_default(&self, explicit: Option<&str>) -> Result<DeviceId, AuthError> {
        match (&self.device_id, explicit) {
            (Some(bound), Some(asked)) if bound.as_str() != asked => {
                Err(AuthError::OtherDevice(bound.to_string()))
            }
            (Some(bound), _) => Ok(bound.clone()),
            (None, asked) => Ok(DeviceId::from(asked.unwrap_or(DEFAULT_DEVICE))),
        }
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
    #[error("this token is for device `{0}` only")]
    OtherDevice(String),
}

/// What a user token must carry besides a valid signature.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Refuse tokens without `exp` (on by default: a token that never expires cannot be
    /// taken back).
    pub require_exp: bool,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's), when set.
    pub audience: Option<String>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            require_exp: true,
            issuer: None,
            audience: None,
        }
    }
}

/// One key a token may be signed with.
#[derive(Clone)]
struct VerifyingKey {
    /// The JWKS `kid`, matched against the token header's when both have one.
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Minting (HS256, with the primary secret) and verifying user tokens: signed with the
/// primary secret, the next one during a rotation, or a login service's public keys
/// (PEM or JWKS: RS256, ES256, EdDSA), under a [`TokenPolicy`].
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    keys: Vec<VerifyingKey>,
    policy: TokenPolicy,
}

impl JwtKeys {
    /// Keys for `secret` under the default policy; an empty secret is refused.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        let invalid = |e: jsonwebtoken::errors::Error| AuthError::Invalid(e.to_string());
        let mut keys = JwtKeys {
            encoding: EncodingKey::from_secret(secret).map_err(invalid)?,
            keys: Vec::new(),
            policy: TokenPolicy::default(),
        };
        keys.accept_secret(secret)?;
        Ok(keys)
    }

    pub fn with_policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Also accepts tokens signed with `secret` (the next one, while clients move over).
    pub fn accept_secret(&mut self, secret: &[u8]) -> Result<(), AuthError> {
        if secret.is_empty() {
            return Err(AuthError::Invalid("empty secret".into()));
        }
        self.keys.push(VerifyingKey {
            kid: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret).map_err(|e| AuthError::Invalid(e.to_string()))?,
        });
        Ok(())
    }

    /// Also accepts tokens signed by the private half of a PEM public key: RSA (RS256),
    /// EC P-256 (ES256) or Ed25519 (EdDSA).
    pub fn accept_public_key_pem(&mut self, pem: &[u8]) -> Result<(), AuthError> {
        let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, key)
        } else {
            return Err(AuthError::Invalid(
                "not an RSA, EC P-256 or Ed25519 public key (PEM)".into(),
            ));
        };
        self.keys.push(VerifyingKey {
            kid: None,
            algorithm,
            key,
        });
        Ok(())
    }

    /// Also accepts tokens signed by any key of a JWKS document (`{"keys": [...]}`).
    pub fn accept_jwks(&mut self, json: &str) -> Result<(), AuthError> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| AuthError::Invalid(format!("not a JWKS document: {e}")))?;
        for jwk in &set.keys {
            let algorithm = match &jwk.common.key_algorithm {
                Some(alg) => Algorithm::from_str(&alg.to_string())
                    .map_err(|e| AuthError::Invalid(format!("JWKS key algorithm: {e}")))?,
                None => match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => {
                        return Err(AuthError::Invalid(
                            "JWKS: only RSA, EC and OKP public keys (symmetric keys go in CHAT_JWT_SECRET)".into(),
                        ))
                    }
                },
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| AuthError::Invalid(format!("JWKS key: {e}")))?;
            self.keys.push(VerifyingKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        Ok(())
    }

    /// A token for `user` (and `device`), expiring `ttl` from now.
    pub fn mint(
        &self,
        user: &str,
        device: Option<&str>,
        ttl: Duration,
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
            exp: Some(now + ttl.as_secs().max(1)),
            nbf: None,
            iat: Some(now),
            iss: None,
            aud: None,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the primary secret; tests use it to make expired or
    /// malformed tokens.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // A configured check also requires its claim: absent, it would be skipped.
        validation.required_spec_claims = [
            (self.policy.require_exp, "exp"),
            (self.policy.issuer.is_some(), "iss"),
            (self.policy.audience.is_some(), "aud"),
        ]
        .into_iter()
        .filter(|(required, _)| *required)
        .map(|(_, claim)| claim.to_owned())
        .collect::<HashSet<_>>();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        match &self.policy.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.policy.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }

    /// Checks the signature (against every key that fits the token's algorithm and
    /// `kid`), the policy's claims, `exp`/`nbf` and the id formats.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let mut failure = AuthError::Invalid("no key accepts this token's algorithm".into());
        let fitting = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && (k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
        });
        for key in fitting {
            match decode::<Claims>(token, &key.key, &self.validation(key.algorithm)) {
                Ok(data) => return identity(data.claims),
                Err(e) => {
                    failure = match e.kind() {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::MissingRequiredClaim(claim) => {
                            AuthError::Invalid(format!("the token has no `{claim}`"))
                        }
                        _ if failure == AuthError::Expired => failure,
                        _ => AuthError::Invalid(e.to_string()),
                    }
                }
            }
        }
        Err(failure)
    }
}

fn identity(claims: Claims) -> Result<Identity, AuthError> {
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

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn claims(exp: Option<u64>) -> Claims {
        Claims {
            sub: "alice".into(),
            device: None,
            exp,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
        }
    }

    #[test]
    fn round_trips_user_and_device() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let token = keys.mint("alice", Some("phone"), HOUR).unwrap();
        let id = keys.verify(&token).unwrap();
        assert_eq!(id.user_id, "alice");
        assert_eq!(id.device_id.as_deref(), Some("phone"));
    }

    #[test]
    fn refuses_other_secret_expired_and_bad_ids() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let other = JwtKeys::new(b"other").unwrap();
        let token = other.mint("alice", None, HOUR).unwrap();
        assert!(matches!(keys.verify(&token), Err(AuthError::Invalid(_))));

        let expired = keys.sign(&claims(Some(unix_now() - 3600))).unwrap();
        assert_eq!(keys.verify(&expired), Err(AuthError::Expired));

        let bad_user = keys
            .sign(&Claims {
                sub: "no spaces allowed".into(),
                ..claims(Some(unix_now() + 60))
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
                nbf: Some(unix_now() + 3600),
                ..claims(Some(unix_now() + 7200))
            })
            .unwrap();
        assert!(keys.verify(&future).is_err());
    }

    #[test]
    fn tokens_must_expire_unless_the_policy_says_otherwise() {
        let keys = JwtKeys::new(b"secret").unwrap();
        let forever = keys.sign(&claims(None)).unwrap();
        let refused = keys.verify(&forever).unwrap_err();
        assert!(refused.to_string().contains("exp"), "{refused}");
        let lenient = keys.with_policy(TokenPolicy {
            require_exp: false,
            ..TokenPolicy::default()
        });
        assert_eq!(lenient.verify(&forever).unwrap().user_id, "alice");
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let keys = JwtKeys::new(b"secret").unwrap().with_policy(TokenPolicy {
            issuer: Some("https://login.example".into()),
            audience: Some("chat".into()),
            ..TokenPolicy::default()
        });
        let exp = Some(unix_now() + 60);
        let right = keys
            .sign(&Claims {
                iss: Some("https://login.example".into()),
                aud: Some(serde_json::json!(["web", "chat"])),
                ..claims(exp)
            })
            .unwrap();
        assert!(keys.verify(&right).is_ok());
        for (iss, aud) in [
            (None, Some("chat")),
            (Some("https://evil.example"), Some("chat")),
            (Some("https://login.example"), Some("other")),
            (Some("https://login.example"), None),
        ] {
            let wrong = keys
                .sign(&Claims {
                    iss: iss.map(Into::into),
                    aud: aud.map(|a| serde_json::json!(a)),
                    ..claims(exp)
                })
                .unwrap();
            assert!(keys.verify(&wrong).is_err(), "iss {iss:?}, aud {aud:?}");
        }
    }

    #[test]
    fn during_a_rotation_both_secrets_are_accepted() {
        let old = JwtKeys::new(b"old-secret").unwrap();
        let new = JwtKeys::new(b"new-secret").unwrap();
        let mut server = JwtKeys::new(b"old-secret").unwrap();
        server.accept_secret(b"new-secret").unwrap();
        for keys in [&old, &new] {
            let token = keys.mint("alice", None, HOUR).unwrap();
            assert!(server.verify(&token).is_ok());
        }
        let stranger = JwtKeys::new(b"third")
            .unwrap()
            .mint("alice", None, HOUR)
            .unwrap();
        assert!(server.verify(&stranger).is_err());
    }

    #[test]
    fn a_bound_device_refuses_another() {
        let id = Identity {
            user_id: "alice".into(),
            device_id: Some("phone".into()),
        };
        assert_eq!(id.device_or_default(None).unwrap(), "phone");
        assert_eq!(id.device_or_default(Some("phone")).unwrap(), "phone");
        assert_eq!(
            id.device_or_default(Some("tablet")),
            Err(AuthError::OtherDevice("phone".into()))
        );
        let unbound = Identity {
            device_id: None,
            ..id
        };
        assert_eq!(unbound.device_or_default(Some("tablet")).unwrap(), "tablet");
        assert_eq!(unbound.device_or_default(None).unwrap(), DEFAULT_DEVICE);
    }
}
