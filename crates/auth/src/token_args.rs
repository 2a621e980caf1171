//! How an operator configures which user tokens are accepted: flags with env vars, shared
//! by `chatd` and the gateway.

use std::path::PathBuf;

use crate::jwt::{AuthError, JwtKeys, TokenPolicy};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TokenArgs {
    /// Accept tokens without an `exp` claim (off: every token must expire).
    #[arg(long, env = "CHAT_JWT_ALLOW_NO_EXP", default_value_t = false)]
    pub jwt_allow_no_exp: bool,

    /// Tokens must carry this `iss` (your login service), when set.
    #[arg(long, env = "CHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Tokens must carry this `aud`, when set.
    #[arg(long, env = "CHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// A second HS256 secret, accepted besides CHAT_JWT_SECRET while clients move to it
    /// (rotation: add it here, switch minting to it, then make it CHAT_JWT_SECRET).
    #[arg(long, env = "CHAT_JWT_SECRET_NEXT", hide_env_values = true)]
    pub jwt_secret_next: Option<String>,

    /// Public key (PEM: RSA, EC P-256 or Ed25519) of a login service that signs tokens
    /// with RS256, ES256 or EdDSA.
    #[arg(long, env = "CHAT_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// JWKS file (`{"keys": [...]}`) of a login service's public keys, chosen by `kid`;
    /// read at start (restart to pick up a new key).
    #[arg(long, env = "CHAT_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
}

impl TokenArgs {
    /// The verifier for `secret` (the one this server also mints with) and these settings.
    pub fn keys(&self, secret: &[u8]) -> Result<JwtKeys, AuthError> {
        let mut keys = JwtKeys::new(secret)?.with_policy(TokenPolicy {
            require_exp: !self.jwt_allow_no_exp,
            issuer: self.jwt_issuer.clone().filter(|s| !s.is_empty()),
            audience: self.jwt_audience.clone().filter(|s| !s.is_empty()),
        });
        if let Some(next) = self.jwt_secret_next.as_deref().filter(|s| !s.is_empty()) {
            keys.accept_secret(next.as_bytes())?;
        }
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| AuthError::Invalid(format!("read {}: {e}", path.display())))
        };
        if let Some(path) = &self.jwt_public_key_file {
            keys.accept_public_key_pem(&read(path)?)?;
        }
        if let Some(path) = &self.jwt_jwks_file {
            let json = String::from_utf8(read(path)?)
                .map_err(|_| AuthError::Invalid(format!("{} is not UTF-8", path.display())))?;
            keys.accept_jwks(&json)?;
        }
        Ok(keys)
    }
}
