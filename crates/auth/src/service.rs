//! Tokens one service presents to another on internal calls: short-lived HS256 JWTs over a
//! secret only the services share (never the users' secret), with their own audience, so
//! a user token can never pass as a service token or the other way round.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::jwt::AuthError;

/// The audience of every service token.
pub const SERVICE_AUDIENCE: &str = "chat-internal";
/// Shortest internal secret accepted: a guessable one would make the internal API public.
pub const MIN_SERVICE_SECRET_BYTES: usize = 16;

#[derive(Debug, Serialize, Deserialize)]
struct ServiceClaims {
    /// The calling service instance (e.g. the gateway's id), for logs.
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

#[derive(Clone)]
pub struct ServiceKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl ServiceKeys {
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SERVICE_SECRET_BYTES {
            return Err(AuthError::Invalid(format!(
                "the internal secret must be at least {MIN_SERVICE_SECRET_BYTES} bytes"
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = HashSet::from(["exp".into(), "aud".into()]);
        validation.set_audience(&[SERVICE_AUDIENCE]);
        validation.leeway = 5;
        let invalid = |e: jsonwebtoken::errors::Error| AuthError::Invalid(e.to_string());
        Ok(ServiceKeys {
            encoding: EncodingKey::from_secret(secret).map_err(invalid)?,
            decoding: DecodingKey::from_secret(secret).map_err(invalid)?,
            validation,
        })
    }

    /// A token naming `service`, valid for `ttl`.
    pub fn mint(&self, service: &str, ttl: Duration) -> Result<String, AuthError> {
        let now = crate::jwt::unix_now();
        let claims = ServiceClaims {
            sub: service.to_owned(),
            aud: SERVICE_AUDIENCE.to_owned(),
            iat: now,
            exp: now + ttl.as_secs().max(1),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// The calling service, if the token is ours and current.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        let data = decode::<ServiceClaims>(token, &self.decoding, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        Ok(data.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JwtKeys;

    const SECRET: &[u8] = b"internal-secret-of-32-bytes-long";

    #[test]
    fn a_minted_token_verifies_and_names_its_service() {
        let keys = ServiceKeys::new(SECRET).unwrap();
        let token = keys.mint("gw-1", Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), "gw-1");
    }

    #[test]
    fn other_secrets_user_tokens_and_short_secrets_are_refused() {
        let keys = ServiceKeys::new(SECRET).unwrap();
        let other = ServiceKeys::new(b"another-secret-of-32-bytes-long!").unwrap();
        let token = other.mint("gw-1", Duration::from_secs(60)).unwrap();
        assert!(keys.verify(&token).is_err());
        // A user token signed with the same bytes lacks the audience.
        let user = JwtKeys::new(SECRET)
            .unwrap()
            .mint("alice", None, Duration::from_secs(60))
            .unwrap();
        assert!(keys.verify(&user).is_err());
        assert!(ServiceKeys::new(b"short").is_err());
    }
}
