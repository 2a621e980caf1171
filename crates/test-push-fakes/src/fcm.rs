//! A fake FCM HTTP v1 with its OAuth2 token endpoint: the JWT-bearer assertion must verify
//! with the service account's public key and carry the right issuer, audience and scope;
//! sends must bear an access token this server issued.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::script::Script;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::json;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// One accepted send.
#[derive(Debug, Clone)]
pub struct FcmRequest {
    pub project: String,
    pub message: serde_json::Value,
}

/// A scripted answer: HTTP status, FCM `error.status`, `errorCode` detail, Retry-After.
#[derive(Debug, Clone)]
pub struct FcmReply {
    pub status: u16,
    pub error_status: &'static str,
    pub error_code: Option<&'static str>,
    pub retry_after_secs: Option<u64>,
}

#[derive(Clone)]
struct Shared {
    key: Arc<DecodingKey>,
    client_email: String,
    token_uri: Arc<Mutex<String>>,
    issued: Arc<Mutex<HashSet<String>>>,
    accepted: Arc<Mutex<Vec<FcmRequest>>>,
    rejected: Arc<Mutex<Vec<String>>>,
    script: Arc<Script<FcmReply>>,
    /// Requests answered 200: the notifications a device would show.
    delivered: Arc<Mutex<Vec<FcmRequest>>>,
    /// How long every send waits before it answers (a slow provider).
    latency: Arc<Mutex<std::time::Duration>>,
}

pub struct FakeFcm {
    pub url: String,
    shared: Shared,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct Assertion {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Checks a JWT-bearer assertion as Google's token endpoint does: an RS256 signature by the
/// account's key over the segments as sent (Google accepts them with or without base64
/// padding; gcp_auth pads), this endpoint as audience, and a current, at most one-hour
/// validity.
fn verify_assertion(jwt: &str, key: &DecodingKey, token_uri: &str) -> Result<Assertion, String> {
    use base64::Engine;
    let segments: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = segments[..] else {
        return Err("not three segments".into());
    };
    let decode = |segment: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment.trim_end_matches('='))
            .map_err(|e| format!("base64: {e}"))
    };
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|e| format!("header: {e}"))?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let signed = &jwt[..jwt.len() - signature.len() - 1];
    let valid = jsonwebtoken::crypto::verify(
        signature.trim_end_matches('='),
        signed.as_bytes(),
        key,
        Algorithm::RS256,
    )
    .map_err(|e| format!("signature: {e}"))?;
    if !valid {
        return Err("signature does not verify".into());
    }
    let claims: Assertion =
        serde_json::from_slice(&decode(payload)?).map_err(|e| format!("claims: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims.aud != token_uri {
        return Err(format!("audience {} is not {token_uri}", claims.aud));
    }
    if claims.exp <= now || claims.iat > now + 60 || claims.exp > claims.iat + 3600 {
        return Err("expired, not yet valid, or valid too long".into());
    }
    Ok(claims)
}

impl FakeFcm {
    pub async fn start(public_key_pem: &str, client_email: &str) -> Self {
        let shared = Shared {
            key: Arc::new(
                DecodingKey::from_rsa_pem(public_key_pem.as_bytes()).expect("RSA public key"),
            ),
            client_email: client_email.into(),
            token_uri: Arc::default(),
            issued: Arc::default(),
            accepted: Arc::default(),
            rejected: Arc::default(),
            script: Arc::default(),
            latency: Arc::default(),
            delivered: Arc::default(),
        };
        let router = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/{action}", post(send))
            .with_state(shared.clone());
        let url = crate::serve(router).await;
        *shared.token_uri.lock().unwrap() = format!("{url}/token");
        FakeFcm { url, shared }
    }

    /// A service-account JSON file's content pointing its token_uri at this fake.
    pub fn service_account_json(&self, project_id: &str, private_key_pem: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": project_id,
            "client_email": self.shared.client_email,
            "private_key": private_key_pem,
            "token_uri": self.shared.token_uri.lock().unwrap().clone(),
        })
        .to_string()
    }

    /// Answers for requests to `token`, in order, before the general script applies.
    pub fn script_token(&self, token: &str, replies: impl IntoIterator<Item = FcmReply>) {
        self.shared.script.extend_for(token, replies);
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = FcmReply>) {
        self.shared.script.extend(replies);
    }

    /// Every send from now on answers only after `latency`.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *self.shared.latency.lock().unwrap() = latency;
    }

    /// Requests answered 200 (a notification shown), in order.
    pub fn delivered(&self) -> Vec<FcmRequest> {
        self.shared.delivered.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> Vec<FcmRequest> {
        self.shared.accepted.lock().unwrap().clone()
    }

    pub fn rejected(&self) -> Vec<String> {
        self.shared.rejected.lock().unwrap().clone()
    }

    /// Access tokens handed out so far.
    pub fn tokens_issued(&self) -> usize {
        self.shared.issued.lock().unwrap().len()
    }
}

fn oauth_error(shared: &Shared, why: &str) -> Response {
    shared.rejected.lock().unwrap().push(why.to_owned());
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": why})),
    )
        .into_response()
}

async fn token(State(shared): State<Shared>, Form(form): Form<TokenForm>) -> Response {
    if form.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error(&shared, "unsupported grant_type");
    }
    let token_uri = shared.token_uri.lock().unwrap().clone();
    let claims = match verify_assertion(&form.assertion, &shared.key, &token_uri) {
        Ok(claims) => claims,
        Err(e) => return oauth_error(&shared, &format!("bad assertion: {e}")),
    };
    if claims.iss != shared.client_email || claims.scope != SCOPE {
        return oauth_error(&shared, "wrong issuer or scope");
    }
    let mut issued = shared.issued.lock().unwrap();
    let access = format!("fake-access-{}", issued.len() + 1);
    issued.insert(access.clone());
    Json(json!({"access_token": access, "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}

/// A Google error body; an empty `error_status` answers like something that is not FCM
/// (a proxy, a wrong endpoint): plain text. `INVALID_ARGUMENT` as the error code stands
/// for Google's answer to a malformed token, which names `message.token`.
fn fcm_error(status: u16, error_status: &str, code: Option<&str>) -> Response {
    if error_status.is_empty() {
        return (StatusCode::from_u16(status).unwrap(), "Not Found").into_response();
    }
    let mut error =
        json!({"error": {"code": status, "message": "scripted", "status": error_status}});
    if let Some(code) = code {
        error["error"]["details"] = json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]);
        if code == "INVALID_ARGUMENT" {
            error["error"]["details"].as_array_mut().unwrap().push(json!({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token", "description": "The registration token is not a valid FCM registration token"}],
            }));
        }
    }
    (StatusCode::from_u16(status).unwrap(), Json(error)).into_response()
}

async fn send(
    State(shared): State<Shared>,
    Path((project, action)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let reject = |why: &str, status: u16, error_status: &str| {
        shared.rejected.lock().unwrap().push(why.to_owned());
        fcm_error(status, error_status, None)
    };
    if action != "messages:send" {
        return reject("unknown action", 404, "NOT_FOUND");
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if !bearer.is_some_and(|b| shared.issued.lock().unwrap().contains(&b)) {
        return reject("missing or unknown access token", 401, "UNAUTHENTICATED");
    }
    let message = body["message"].clone();
    if !message["token"].is_string() || !message["notification"].is_object() {
        return reject(
            "message without token or notification",
            400,
            "INVALID_ARGUMENT",
        );
    }
    let request = FcmRequest {
        project: project.clone(),
        message,
    };
    shared.accepted.lock().unwrap().push(request.clone());
    let latency = *shared.latency.lock().unwrap();
    tokio::time::sleep(latency).await;
    let token = request.message["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let scripted = shared.script.next(&token);
    match scripted {
        None => {
            shared.delivered.lock().unwrap().push(request);
            Json(json!({"name": format!("projects/{project}/messages/1")})).into_response()
        }
        Some(r) => {
            let mut response = fcm_error(r.status, r.error_status, r.error_code);
            if let Some(secs) = r.retry_after_secs {
                response.headers_mut().insert("retry-after", secs.into());
            }
            response
        }
    }
}
