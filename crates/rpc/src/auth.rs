//! Service authentication on the internal API. Every call carries
//! `authorization: Bearer <service token>` (short-lived, minted from the internal secret,
//! renewed well before it expires); the server checks it before anything else runs, and
//! a call without a valid token gets no data and is counted. `Insecure` exists only for a
//! private network an operator vouches for (`--insecure-internal`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_auth::ServiceKeys;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// How long a minted service token lives; clients renew it at half its life.
const TOKEN_TTL: Duration = Duration::from_secs(300);

static REFUSALS: chat_ops::LogEvery = chat_ops::LogEvery::new(Duration::from_secs(10));

/// How a process authenticates internal calls.
#[derive(Clone)]
pub enum InternalAuth {
    /// Service tokens over this secret.
    Token(Arc<ServiceKeys>),
    /// No authentication at all.
    Insecure,
}

/// The server's check, as a tonic interceptor.
#[derive(Clone)]
pub struct Verifier {
    auth: InternalAuth,
}

impl Verifier {
    pub fn new(auth: InternalAuth) -> Self {
        Verifier { auth }
    }
}

impl Interceptor for Verifier {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let InternalAuth::Token(keys) = &self.auth else {
            return Ok(request);
        };
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let verified = match token {
            None => Err("no service token".to_string()),
            Some(token) => keys.verify(token).map_err(|e| e.to_string()),
        };
        match verified {
            Ok(_service) => Ok(request),
            Err(reason) => {
                metrics::counter!("chat_internal_auth_failures_total").increment(1);
                if let Some(count) = REFUSALS.event() {
                    tracing::warn!(refused = count, %reason, "internal calls refused: bad service credentials (count since the last report)");
                }
                Err(Status::unauthenticated(
                    "valid service credentials required",
                ))
            }
        }
    }
}

/// A minted token as a header value, and when it was minted.
type MintedToken = (Instant, MetadataValue<Ascii>);

/// The client's side: a current token for every call.
#[derive(Clone)]
pub struct Credentials {
    auth: InternalAuth,
    service: Arc<str>,
    current: Arc<Mutex<Option<MintedToken>>>,
}

impl Credentials {
    /// Credentials of `service` (named in the tokens, for the server's logs).
    pub fn new(auth: InternalAuth, service: &str) -> Self {
        Credentials {
            auth,
            service: service.into(),
            current: Arc::new(Mutex::new(None)),
        }
    }

    fn header(&self) -> Result<Option<MetadataValue<Ascii>>, Status> {
        let InternalAuth::Token(keys) = &self.auth else {
            return Ok(None);
        };
        let mut current = self.current.lock().expect("credentials lock");
        if let Some((minted, value)) = current.as_ref() {
            if minted.elapsed() < TOKEN_TTL / 2 {
                return Ok(Some(value.clone()));
            }
        }
        let token = keys
            .mint(&self.service, TOKEN_TTL)
            .map_err(|e| Status::internal(format!("cannot mint a service token: {e}")))?;
        let value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("service token is not a valid header"))?;
        *current = Some((Instant::now(), value.clone()));
        Ok(Some(value))
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = self.header()? {
            request.metadata_mut().insert("authorization", value);
        }
        // Unary calls carry the caller's trace; sends carry theirs per item.
        let traceparent = chat_ops::trace_context::current_traceparent();
        if let Ok(value) = traceparent.parse() {
            if !traceparent.is_empty() {
                request
                    .metadata_mut()
                    .insert(chat_ops::trace_context::TRACEPARENT, value);
            }
        }
        Ok(request)
    }
}

/// How an operator configures internal authentication; each is a flag with an env var.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InternalAuthArgs {
    /// Secret the internal services share to authenticate calls between them (at least
    /// 16 bytes; `openssl rand -hex 32`). Required unless `--insecure-internal`.
    #[arg(long, env = "CHAT_INTERNAL_SECRET", hide_env_values = true)]
    pub internal_secret: Option<String>,

    /// Make and accept internal calls without authentication: only on a network no one
    /// else can reach.
    #[arg(long, env = "CHAT_INSECURE_INTERNAL")]
    pub insecure_internal: bool,
}

/// Why internal authentication is not configured.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("set CHAT_INTERNAL_SECRET (or, on a private network only, --insecure-internal)")]
    Missing,
    #[error("CHAT_INTERNAL_SECRET and --insecure-internal exclude each other")]
    Both,
    #[error("unusable CHAT_INTERNAL_SECRET")]
    Unusable(#[source] chat_auth::AuthError),
}

impl InternalAuthArgs {
    pub fn resolve(&self) -> Result<InternalAuth, AuthSetupError> {
        let secret = self.internal_secret.as_deref().filter(|s| !s.is_empty());
        match (secret, self.insecure_internal) {
            (Some(_), true) => Err(AuthSetupError::Both),
            (None, false) => Err(AuthSetupError::Missing),
            (None, true) => {
                tracing::warn!("internal calls are NOT authenticated (--insecure-internal)");
                Ok(InternalAuth::Insecure)
            }
            (Some(secret), false) => ServiceKeys::new(secret.as_bytes())
                .map(|keys| InternalAuth::Token(Arc::new(keys)))
                .map_err(AuthSetupError::Unusable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_auth_is_required_unless_explicitly_waived() {
        let args = |secret: Option<&str>, insecure| InternalAuthArgs {
            internal_secret: secret.map(str::to_owned),
            insecure_internal: insecure,
        };
        assert!(matches!(
            args(None, false).resolve(),
            Err(AuthSetupError::Missing)
        ));
        assert!(matches!(
            args(Some("s".repeat(32).as_str()), true).resolve(),
            Err(AuthSetupError::Both)
        ));
        assert!(matches!(
            args(Some("short"), false).resolve(),
            Err(AuthSetupError::Unusable(_))
        ));
        assert!(matches!(
            args(None, true).resolve(),
            Ok(InternalAuth::Insecure)
        ));
        assert!(matches!(
            args(Some("s".repeat(32).as_str()), false).resolve(),
            Ok(InternalAuth::Token(_))
        ));
    }
}
