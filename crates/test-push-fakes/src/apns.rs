//! A fake APNs: `POST /3/device/{token}` with an ES256 provider token that must verify with
//! the test key's public half and name the expected team and key id.

use std::sync::{Arc, Mutex};

use crate::script::Script;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// One accepted request, as APNs would have seen it.
#[derive(Debug, Clone)]
pub struct ApnsRequest {
    pub device_token: String,
    pub topic: String,
    pub push_type: String,
    pub collapse_id: Option<String>,
    pub priority: Option<String>,
    pub payload: serde_json::Value,
}

/// A scripted answer; requests beyond the script get 200.
#[derive(Debug, Clone)]
pub struct ApnsReply {
    pub status: u16,
    pub reason: Option<&'static str>,
    pub retry_after_secs: Option<u64>,
}

struct Expectations {
    key: DecodingKey,
    team_id: String,
    key_id: String,
    topic: String,
}

#[derive(Clone)]
struct Shared {
    expect: Arc<Expectations>,
    accepted: Arc<Mutex<Vec<ApnsRequest>>>,
    rejected: Arc<Mutex<Vec<String>>>,
    script: Arc<Script<ApnsReply>>,
}

pub struct FakeApns {
    pub url: String,
    shared: Shared,
}

#[derive(Deserialize)]
struct ProviderClaims {
    iss: String,
    iat: u64,
}

impl FakeApns {
    pub async fn start(public_key_pem: &str, team_id: &str, key_id: &str, topic: &str) -> Self {
        let shared = Shared {
            expect: Arc::new(Expectations {
                key: DecodingKey::from_ec_pem(public_key_pem.as_bytes()).expect("EC public key"),
                team_id: team_id.into(),
                key_id: key_id.into(),
                topic: topic.into(),
            }),
            accepted: Arc::default(),
            rejected: Arc::default(),
            script: Arc::default(),
        };
        let router = Router::new()
            .route("/3/device/{token}", post(device))
            .with_state(shared.clone());
        FakeApns {
            url: crate::serve(router).await,
            shared,
        }
    }

    /// Answers for requests to `token`, in order, before the general script applies.
    pub fn script_token(&self, token: &str, replies: impl IntoIterator<Item = ApnsReply>) {
        self.shared.script.extend_for(token, replies);
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = ApnsReply>) {
        self.shared.script.extend(replies);
    }

    pub fn accepted(&self) -> Vec<ApnsRequest> {
        self.shared.accepted.lock().unwrap().clone()
    }

    /// Requests refused for not being what APNs accepts (bad token, headers, path).
    pub fn rejected(&self) -> Vec<String> {
        self.shared.rejected.lock().unwrap().clone()
    }
}

fn reply(status: u16, reason: &str) -> Response {
    let body = serde_json::json!({"reason": reason}).to_string();
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Checks a request as APNs does; the error is (status, reason).
fn check(
    expect: &Expectations,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<serde_json::Value, (u16, &'static str)> {
    let bearer =
        header(headers, "authorization").and_then(|a| a.strip_prefix("bearer ").map(str::to_owned));
    let token = bearer.ok_or((403, "MissingProviderToken"))?;
    let kid = jsonwebtoken::decode_header(&token)
        .map_err(|_| (403, "InvalidProviderToken"))?
        .kid;
    if kid.as_deref() != Some(expect.key_id.as_str()) {
        return Err((403, "InvalidProviderToken"));
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<ProviderClaims>(&token, &expect.key, &validation)
        .map_err(|_| (403, "InvalidProviderToken"))?
        .claims;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims.iss != expect.team_id {
        return Err((403, "InvalidProviderToken"));
    }
    if claims.iat + 3600 < now || claims.iat > now + 60 {
        return Err((403, "ExpiredProviderToken"));
    }
    if header(headers, "apns-topic").as_deref() != Some(expect.topic.as_str()) {
        return Err((400, "BadTopic"));
    }
    if header(headers, "apns-push-type").as_deref() != Some("alert") {
        return Err((400, "InvalidPushType"));
    }
    if header(headers, "apns-collapse-id").is_some_and(|c| c.len() > 64) {
        return Err((400, "BadCollapseId"));
    }
    let payload: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| (400, "PayloadEmpty"))?;
    if !payload["aps"].is_object() {
        return Err((400, "PayloadEmpty"));
    }
    Ok(payload)
}

async fn device(
    State(shared): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let payload = match check(&shared.expect, &headers, &body) {
        Ok(payload) => payload,
        Err((status, reason)) => {
            shared.rejected.lock().unwrap().push(reason.to_owned());
            return reply(status, reason);
        }
    };
    let scripted = shared.script.next(&token);
    shared.accepted.lock().unwrap().push(ApnsRequest {
        device_token: token,
        topic: header(&headers, "apns-topic").unwrap_or_default(),
        push_type: header(&headers, "apns-push-type").unwrap_or_default(),
        collapse_id: header(&headers, "apns-collapse-id"),
        priority: header(&headers, "apns-priority"),
        payload,
    });
    match scripted {
        None => StatusCode::OK.into_response(),
        Some(r) => {
            let mut response = reply(r.status, r.reason.unwrap_or(""));
            if let Some(secs) = r.retry_after_secs {
                response.headers_mut().insert("retry-after", secs.into());
            }
            response
        }
    }
}
