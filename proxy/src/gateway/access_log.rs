//! One access line and the request metrics per request.
//!
//! The line carries the path only, never the query string (it may hold a
//! token), and no header values: `Authorization`, cookies and tokens cannot
//! reach the log from here.

use pingora::prelude::Session;
use pingora::Error;

use super::admission::RequestCtx;
use super::outcome::Outcome;

/// Route label for requests that matched no route.
pub const NO_ROUTE: &str = "(none)";

pub fn record(session: &Session, error: Option<&Error>, ctx: &RequestCtx) {
    let Some(runtime) = ctx.runtime.as_deref() else { return };
    let status = session.response_written().map(|r| r.status.as_u16()).or(ctx.local_status).unwrap_or(0);
    let outcome = match (ctx.outcome.is_forwarded(), status) {
        (true, 502 | 504) => Outcome::UpstreamError,
        _ => ctx.outcome,
    };
    let metrics = ctx.route.and_then(|i| runtime.route_metrics.get(i)).unwrap_or(&runtime.unmatched_metrics);
    metrics.record(&runtime.metrics, outcome, ctx.start);

    let route = ctx.route.map_or(NO_ROUTE, |route| &*runtime.routes.routes()[route].name);
    let identity = ctx.identity.as_deref();
    let issuer = identity
        .and_then(|identity| runtime.config.issuers.get(identity.issuer.0))
        .map_or("", |issuer| issuer.name.as_str());
    let request = session.req_header();
    tracing::info!(
        target: "portcullis::access",
        client = %Client(ctx.client_ip),
        method = %request.method,
        path = %request.uri.path(),
        route,
        decision = outcome.label(),
        status,
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
