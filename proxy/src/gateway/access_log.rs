//! One access line and the request metrics per request.
//!
//! The line carries the path only, never the query string (it may hold a
//! token), and no header values: `Authorization`, cookies and tokens cannot
//! reach the log from here.

use pingora::prelude::Session;
use pingora::Error;

use super::admission::RequestCtx;
use crate::metrics::{observe_since, Metrics};

/// Route label for requests that matched no route.
pub const NO_ROUTE: &str = "(none)";

pub fn record(session: &Session, error: Option<&Error>, ctx: &RequestCtx, metrics: &Metrics) {
    let status = session.response_written().map(|r| r.status.as_u16()).or(ctx.local_status).unwrap_or(0);
    let runtime = ctx.runtime.as_deref();
    let route = runtime.zip(ctx.route).map_or(NO_ROUTE, |(runtime, route)| &*runtime.routes.routes()[route].name);
    let decision = if ctx.decision == "allow" || ctx.decision == "public" {
        match status {
            502 | 504 => "upstream_error",
            _ => ctx.decision,
        }
    } else {
        ctx.decision
    };
    metrics.requests.with_label_values(&[route, decision]).inc();
    observe_since(&metrics.request_duration.with_label_values(&[route]), ctx.start);

    let request = session.req_header();
    let identity = ctx.identity.as_deref();
    let issuer = runtime
        .zip(identity)
        .and_then(|(runtime, identity)| runtime.config.issuers.get(identity.issuer.0))
        .map_or("", |issuer| issuer.name.as_str());
    let client = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let latency_ms = ctx.start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "portcullis::access",
        client = %client,
        method = %request.method,
        path = %request.uri.path(),
        route,
        decision,
        status,
        subject = identity.and_then(|i| i.subject.as_deref()).unwrap_or(""),
        issuer,
        latency_ms = format_args!("{latency_ms:.3}"),
        error = error.map(|e| e.etype().as_str()).unwrap_or(""),
    );
}
