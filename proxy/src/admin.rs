//! The admin listener: `/metrics`, `/healthz`, `/readyz`, and
//! `POST /revocations` (only with the admin token).
//!
//! Separate from the proxy port (bind it to loopback or a private network)
//! and never subject to the route policy.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::auth::source::api_key::hash_matches;
use crate::metrics::Metrics;
use crate::revoke::{self, Recorded, RevokeRequest};
use crate::runtime::Current;

pub(crate) struct Admin {
    current: Current,
    metrics: Arc<Metrics>,
}

impl Admin {
    pub(crate) fn new(current: Current, metrics: Arc<Metrics>) -> Admin {
        Admin { current, metrics }
    }

    /// Gauges that are read rather than counted: set them just before a scrape.
    fn refresh_gauges(&self) {
        let runtime = self.current.load();
        self.metrics.token_cache_entries.set(runtime.auth().cache().len() as i64);
        for limiter in runtime.limiters() {
            self.metrics.rate_limit_keys.with_label_values(&[limiter.name()]).set(limiter.tracked_keys() as i64);
        }
    }

    /// Ready when every issuer has keys. Redis is reported, not required:
    /// its limits fall back as `on_store_error` says, so a replica without
    /// Redis still serves.
    fn readiness(&self) -> (StatusCode, String) {
        let runtime = self.current.load();
        let mut reasons = runtime.unready_issuers();
        if let Some(store) = runtime.redis() {
            // Not before the revocations are known: a replica that has never
            // read them could serve a revoked token.
            if !runtime.revocation_book().synced() {
                reasons.push("the revocations have not been read from Redis yet".to_owned());
            } else if store.settings().required_for_readiness && !store.available() {
                reasons.push("Redis is unavailable (redis.required_for_readiness)".to_owned());
            }
        }
        let mut body = if reasons.is_empty() {
            serde_json::json!({ "status": "ready" })
        } else {
            serde_json::json!({ "status": "not_ready", "reasons": reasons })
        };
        if let Some(store) = runtime.redis() {
            body["redis"] = if store.available() { "connected" } else { "unavailable" }.into();
        }
        let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        (status, body.to_string())
    }
}

/// Largest revocation request read.
const MAX_REVOCATION_BODY: usize = 64 * 1024;

impl Admin {
    /// `POST /revocations`: record one revocation (see `revoke`), only for
    /// a request carrying the admin token.
    async fn revocations(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let json =
            |status, value: serde_json::Value| response(status, "application/json", value.to_string().into_bytes());
        let refusal = |status, error: &str, description: String| {
            json(status, serde_json::json!({ "error": error, "error_description": description }))
        };
        if session.req_header().method != http::Method::POST {
            return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n".to_vec());
        }
        let runtime = self.current.load_full();
        let Some(admin_token) = runtime.config().admin_token.as_ref() else {
            let why = "admin_token_env is not configured, so admin writes are off".to_owned();
            return refusal(StatusCode::FORBIDDEN, "access_denied", why);
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        // Digests of equal length, compared in constant time: neither the
        // token nor its length leaks through timing.
        let expected = crate::auth::digest(&String::from_utf8_lossy(admin_token.expose()));
        if !hash_matches(&crate::auth::digest(presented), &expected) {
            let mut answer =
                refusal(StatusCode::UNAUTHORIZED, "invalid_token", "the admin token is required".to_owned());
            answer
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"admin\""));
            return answer;
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_REVOCATION_BODY => body.extend_from_slice(&chunk),
                Ok(Some(_)) => {
                    return refusal(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "body too large".to_owned())
                }
                Ok(None) => break,
                Err(error) => return refusal(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
            }
        }
        let mut request: RevokeRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => return refusal(StatusCode::BAD_REQUEST, "invalid_request", error.to_string()),
        };
        if let Some(given) = request.iss.take() {
            match revoke::resolve_issuer(runtime.config(), &given) {
                Ok(iss) => request.iss = Some(iss),
                Err(why) => return refusal(StatusCode::BAD_REQUEST, "invalid_request", why),
            }
        }
        let book = runtime.revocation_book();
        let (entry, expires) = match request.entry(book.settings(), crate::idp::unix_now()) {
            Ok(entry) => entry,
            Err(why) => return refusal(StatusCode::BAD_REQUEST, "invalid_request", why),
        };
        let shown = entry.to_json();
        match revoke::record(runtime.redis(), book, entry, expires).await {
            Ok(recorded) => {
                let shared = recorded == Recorded::Shared;
                tracing::info!(entry = %shown, expires, ?recorded, "revoked");
                let revoked: serde_json::Value = serde_json::from_str(&shown).unwrap_or_default();
                let body = serde_json::json!({
                    "revoked": revoked,
                    "expires": expires,
                    "shared": shared,
                    "pending": recorded == Recorded::Pending,
                });
                // 202: in force here, and on its way to the other replicas.
                let status = if recorded == Recorded::Pending { StatusCode::ACCEPTED } else { StatusCode::OK };
                json(status, body)
            }
            Err(error) => refusal(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", error.to_string()),
        }
    }
}

fn response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = content_type.parse() {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    let length = response.body().len();
    response.headers_mut().insert(http::header::CONTENT_LENGTH, length.into());
    response
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let request = session.req_header();
        if request.uri.path() == "/revocations" {
            return self.revocations(session).await;
        }
        if request.method != http::Method::GET && request.method != http::Method::HEAD {
            return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n".to_vec());
        }
        match request.uri.path() {
            "/metrics" => {
                self.refresh_gauges();
                response(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", self.metrics.encode())
            }
            "/healthz" => response(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let (status, body) = self.readiness();
                response(status, "application/json", body.into_bytes())
            }
            _ => response(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
