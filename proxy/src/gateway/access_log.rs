//! One access line and the request metrics per request.
//!
//! The line carries the path only, never the query string (it may hold a
//! token), and no header values: `Authorization`, cookies and tokens cannot
//! reach the log from here.

use pingora::prelude::Session;
use pingora::Error;

use super::request::RequestCtx;
use crate::auth::is_api_key;
use crate::labels::NO_ROUTE;

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Count the request and write its access line.
pub(super) fn record(session: &Session, error: Option<&Error>, ctx: &RequestCtx) {
    let Some(runtime) = ctx.runtime.as_deref() else { return };
    let written = session.response_written();
    let status = written.map(|r| r.status.as_u16()).or(ctx.local_status).unwrap_or(0);
    // A gRPC refusal is HTTP 200; what it says is its `grpc-status`, in the
    // header block of the trailers-only answer. Looked up only on the
    // proxy's own 200s (an upstream's status comes in its trailers), so a
    // forwarded request or a JSON refusal pays nothing for it.
    let grpc_status = match written {
        Some(answer) if ctx.local_status.is_some() && answer.status == http::StatusCode::OK => {
            answer.headers.get(GRPC_STATUS).and_then(|v| v.to_str().ok()).unwrap_or("")
        }
        _ => "",
    };
    let outcome = ctx.outcome;
    runtime.route_metrics(ctx.route).record(runtime.metrics(), outcome, ctx.start);

    let route = ctx.route.and_then(|route| runtime.routes().routes().get(route)).map_or(NO_ROUTE, |r| &*r.name);
    let identity = ctx.identity.as_deref();
    let issuer = match identity {
        // API keys have no issuer; the log says which kind it was.
        Some(identity) if is_api_key(identity.issuer) => "api_key",
        Some(identity) => runtime.config().issuers.get(identity.issuer.0).map_or("", |issuer| issuer.name.as_str()),
        None => "",
    };
    let request = session.req_header();
    tracing::info!(
        target: "portcullis::access",
        client = %Client(ctx.client_ip),
        method = %request.method,
        path = %request.uri.path(),
        route,
        decision = outcome.label(),
        status,
        grpc_status,
        subject = identity.and_then(|i| i.subject.as_deref()).unwrap_or(""),
        issuer,
        latency_ms = format_args!("{:.3}", ctx.start.elapsed().as_secs_f64() * 1000.0),
        error = error.map(|e| e.etype().as_str()).unwrap_or(""),
    );
}

/// The client address, formatted only if the line is written.
struct Client(Option<std::net::IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => Ok(()),
        }
    }
}
