//! The admin listener: `/metrics`, `/healthz`, `/readyz`.
//!
//! Separate from the proxy port (bind it to loopback or a private network)
//! and never subject to the route policy.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
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

    fn readiness(&self) -> (StatusCode, String) {
        let reasons = self.current.load().unready_issuers();
        if reasons.is_empty() {
            (StatusCode::OK, serde_json::json!({ "status": "ready" }).to_string())
        } else {
            let body = serde_json::json!({ "status": "not_ready", "reasons": reasons });
            (StatusCode::SERVICE_UNAVAILABLE, body.to_string())
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
