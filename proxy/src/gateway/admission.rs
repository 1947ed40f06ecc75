//! The request-filter phase: everything that decides whether a request may
//! go upstream, in order. Path and header hygiene, route match, the route's
//! rate limits (before any token work), the bearer token, verification, the
//! policy decision. Nothing here writes to the client; it returns what
//! should happen.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use config::RateKey;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use pingora::prelude::Session;
use policy::{decide, normalize, normalize_host, Decision, PathError, Principal};

use super::body;
use super::outcome::Outcome;
use super::respond::Rejection;
use crate::auth::{bearer, AuthError, Identity, Source};
use crate::metrics::observe_since;
use crate::ratelimit::{KeyValue, Limiter};
use crate::runtime::Runtime;

/// Largest request head accepted (all header names and values together).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields accepted.
pub const MAX_HEADER_COUNT: usize = 100;

/// Per-request state carried between Pingora's phases.
pub struct RequestCtx {
    /// The policy this request is decided and forwarded under, loaded once.
    pub runtime: Option<Arc<Runtime>>,
    pub start: Instant,
    pub route: Option<usize>,
    pub outcome: Outcome,
    pub identity: Option<Arc<Identity>>,
    pub client_ip: Option<IpAddr>,
    /// Request target to send upstream when it differs from the client's.
    pub forwarded_target: Option<String>,
    /// Body read ahead of forwarding (form-keyed rate limits), replayed as is.
    pub replay_body: Option<Bytes>,
    pub auth_source: Option<Source>,
    /// Status answered by the proxy itself, for the access log.
    pub local_status: Option<u16>,
    /// Counts this request as in flight until the context is dropped.
    _in_flight: Option<InFlight>,
}

/// Holds one unit of the in-flight count; graceful shutdown waits for zero.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestCtx {
    /// A context counted in `in_flight`.
    pub fn counted(in_flight: &Arc<AtomicUsize>) -> RequestCtx {
        RequestCtx { _in_flight: Some(InFlight::new(in_flight)), ..RequestCtx::new() }
    }

    pub fn new() -> RequestCtx {
        RequestCtx {
            _in_flight: None,
            runtime: None,
            start: Instant::now(),
            route: None,
            outcome: Outcome::Undecided,
            identity: None,
            client_ip: None,
            forwarded_target: None,
            replay_body: None,
            auth_source: None,
            local_status: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new()
    }
}

/// Decide the request. `Ok` means forward; `Err` carries the answer.
pub async fn admit(session: &mut Session, runtime: &Runtime, ctx: &mut RequestCtx) -> Result<(), Rejection> {
    let route = route_request(session, runtime, ctx)?;
    let route = route.map(|i| &runtime.routes.routes()[i]);
    let needs_body = route.is_some_and(|r| {
        r.rate_limits.iter().any(|&i| matches!(runtime.limiters[i].config.key, RateKey::FormField(_)))
    });
    if needs_body {
        ctx.replay_body = body::read_small_body(session).await;
    }

    // Limits keyed by something other than the subject apply first: a login
    // flood is refused before any token is looked at.
    if let Some(route) = route {
        for &index in &route.rate_limits {
            let limiter = &runtime.limiters[index];
            match &limiter.config.key {
                RateKey::Subject => {}
                RateKey::FormField(field) => {
                    let values = ctx
                        .replay_body
                        .as_deref()
                        .map(|body| body::form_field_values(body, body::content_type(session), field))
                        .unwrap_or_default();
                    if values.is_empty() {
                        enforce(limiter, client_key(ctx), ctx)?;
                    }
                    for value in &values {
                        enforce(limiter, KeyValue::Text(value), ctx)?;
                    }
                }
                RateKey::ClientIp | RateKey::Header(_) => {
                    let key = pre_auth_key(limiter, session, ctx);
                    enforce(limiter, key, ctx)?;
                }
            }
        }
    }

    if route.is_some_and(|r| matches!(r.access, policy::Access::Public)) {
        ctx.outcome = Outcome::Public;
        return Ok(());
    }
    authorize(session, runtime, ctx, route).await
}

/// Path and host hygiene and the route match. Returns the route's index.
fn route_request(session: &Session, runtime: &Runtime, ctx: &mut RequestCtx) -> Result<Option<usize>, Rejection> {
    let request = session.req_header();
    ctx.client_ip = client_ip(session, runtime);
    let bad = |ctx: &mut RequestCtx, status: u16, message: String| {
        ctx.outcome = Outcome::BadRequest;
        Rejection::new(status, "invalid_request", message)
    };
    check_headers(request).inspect_err(|_| ctx.outcome = Outcome::BadRequest)?;
    // Pingora keeps the original bytes of a target that is not UTF-8 for
    // the wire and gives `uri` a lossy copy: the policy would decide on a
    // path the upstream never receives. Refuse instead.
    if !request.raw_path_is_utf8() {
        return Err(bad(ctx, 400, PathError::InvalidUtf8.to_string()));
    }
    let path = normalize(request.uri.path()).map_err(|e| match e {
        PathError::TooLong(_) => bad(ctx, 414, e.to_string()),
        _ => bad(ctx, 400, e.to_string()),
    })?;
    let host = request_host(request).map_err(|message| bad(ctx, 400, message.to_owned()))?;
    let route = runtime.routes.find_index(request.method.as_str(), host.as_deref(), &path);
    ctx.route = route;
    // Pingora forwards an absolute-form target verbatim (after checking its
    // authority against Host); send the upstream the origin form the policy
    // decided on.
    let origin_form = request.raw_path().first() == Some(&b'/');
    if path.is_rewritten() || !origin_form || query_token(request, runtime).is_some() {
        ctx.forwarded_target = Some(forwarded_target(path.as_str(), request.uri.query(), runtime));
    }
    Ok(route)
}

/// The bearer token, its verification and the policy decision.
async fn authorize(
    session: &Session,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    route: Option<&policy::Route>,
) -> Result<(), Rejection> {
    let request = session.req_header();
    let token = match credentials(request, query_token(request, runtime), runtime) {
        Ok(token) => token,
        Err(error) => {
            ctx.outcome = Outcome::BadRequest;
            return Err(bearer_rejection(error, runtime));
        }
    };
    let Some(token) = token else {
        ctx.outcome = decide(route, None).into();
        return Err(Rejection::new(401, "unauthorized", "a bearer token is required")
            .challenge(runtime.challenges.plain.clone()));
    };

    let auth_start = Instant::now();
    let (result, source) = runtime.auth.authenticate(token).await;
    ctx.auth_source = Some(source);
    let auth_timer = runtime.auth.metrics().auth_timer(source);
    let identity = match result {
        Ok(identity) => identity,
        Err(error) => {
            ctx.outcome = error.into();
            observe_since(auth_timer, auth_start);
            return Err(auth_rejection(error, runtime));
        }
    };
    let principal = Principal { issuer: identity.issuer, scopes: &identity.scopes };
    let decision = decide(route, Some(principal));
    observe_since(auth_timer, auth_start);
    ctx.outcome = decision.into();
    match decision {
        Decision::Allow | Decision::Public => {}
        Decision::Unauthenticated => {
            return Err(Rejection::new(401, "unauthorized", "a bearer token is required")
                .challenge(runtime.challenges.plain.clone()))
        }
        Decision::IssuerNotAccepted => {
            const WHY: &str = "the token's issuer is not accepted for this resource";
            return Err(Rejection::new(401, "invalid_token", WHY).challenge(runtime.challenges.invalid_token(WHY)));
        }
        Decision::InsufficientScope { required } => {
            return Err(Rejection::new(403, "insufficient_scope", "the token lacks the scope this resource requires")
                .challenge(runtime.challenges.insufficient_scope(required)))
        }
        Decision::NoRoute => {
            return Err(Rejection::new(403, "insufficient_scope", "access to this resource is not granted")
                .challenge(runtime.challenges.insufficient_scope("")))
        }
    }

    if let Some(route) = route {
        for &index in &route.rate_limits {
            let limiter = &runtime.limiters[index];
            if limiter.config.key == RateKey::Subject {
                let subject = identity.subject.as_deref().unwrap_or("");
                enforce(limiter, KeyValue::Text(subject), ctx)?;
            }
        }
    }
    ctx.identity = Some(identity);
    Ok(())
}

/// Header-level hygiene: sizes and the framing ambiguities behind request
/// smuggling. Pingora's parser accepts some of these; an auth proxy must not
/// forward a request whose body boundaries two servers could read differently.
fn check_headers(request: &pingora::http::RequestHeader) -> Result<(), Rejection> {
    let headers = &request.headers;
    if headers.len() > MAX_HEADER_COUNT {
        return Err(Rejection::new(431, "invalid_request", "too many header fields"));
    }
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > MAX_HEADER_BYTES {
        return Err(Rejection::new(431, "invalid_request", "request header fields too large"));
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let valid = !first.is_empty() && first.as_bytes().iter().all(u8::is_ascii_digit);
        if !valid || lengths.next().is_some() {
            return Err(Rejection::new(400, "invalid_request", "invalid or repeated Content-Length"));
        }
        if headers.contains_key(TRANSFER_ENCODING) {
            return Err(Rejection::new(400, "invalid_request", "both Content-Length and Transfer-Encoding"));
        }
    }
    let mut encodings = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = encodings.next() {
        if !first.as_bytes().eq_ignore_ascii_case(b"chunked") || encodings.next().is_some() {
            return Err(Rejection::new(400, "invalid_request", "unsupported Transfer-Encoding"));
        }
    }
    if headers.get_all(HOST).iter().count() > 1 {
        return Err(Rejection::new(400, "invalid_request", "more than one Host header"));
    }
    Ok(())
}

/// The host the request is for: the Host header (Pingora has already
/// refused an absolute-form target whose authority disagrees with it).
fn request_host(request: &pingora::http::RequestHeader) -> Result<Option<std::borrow::Cow<'_, str>>, &'static str> {
    let raw = match request.headers.get(HOST) {
        Some(value) => Some(value.to_str().map_err(|_| "invalid Host header")?),
        None => None,
    };
    match raw {
        None => Ok(None),
        Some(raw) => normalize_host(raw).map(Some).map_err(|_| "invalid Host header"),
    }
}

/// The token from the query string, when the operator allowed it.
fn query_token<'r>(request: &'r pingora::http::RequestHeader, runtime: &Runtime) -> Option<&'r str> {
    let name = runtime.config.tokens.query_parameter.as_deref()?;
    let query = request.uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The request target for the upstream: the canonical path, and the query
/// without a token parameter (tokens must not end up in upstream logs).
fn forwarded_target(path: &str, query: Option<&str>, runtime: &Runtime) -> String {
    let mut target = path.to_owned();
    let Some(query) = query else { return target };
    let skip = runtime.config.tokens.query_parameter.as_deref();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| skip.is_none_or(|name| pair.split_once('=').map_or(*pair, |(k, _)| k) != name))
        .collect();
    if !kept.is_empty() {
        target.push('?');
        target.push_str(&kept.join("&"));
    }
    target
}

fn credentials<'r>(
    request: &'r pingora::http::RequestHeader,
    query_token: Option<&'r str>,
    runtime: &Runtime,
) -> Result<Option<&'r str>, bearer::BearerError> {
    let max = runtime.config.tokens.max_bytes;
    let from_header = bearer::from_headers(request.headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes()), max)?;
    match (from_header, query_token) {
        (Some(_), Some(_)) => Err(bearer::BearerError::SeveralMethods),
        (Some(token), None) => Ok(Some(token)),
        (None, Some(token)) => bearer::from_query(token, max).map(Some),
        (None, None) => Ok(None),
    }
}

fn bearer_rejection(error: bearer::BearerError, runtime: &Runtime) -> Rejection {
    match error {
        bearer::BearerError::TooLarge => Rejection::new(401, "invalid_token", "the token is too large")
            .challenge(runtime.challenges.invalid_token("the token is too large")),
        other => Rejection::new(400, "invalid_request", other.to_string())
            .challenge(runtime.challenges.invalid_request.clone()),
    }
}

fn auth_rejection(error: AuthError, runtime: &Runtime) -> Rejection {
    match error {
        AuthError::InvalidToken(description) => {
            Rejection::new(401, "invalid_token", description).challenge(runtime.challenges.invalid_token(description))
        }
        AuthError::IssuerUnavailable { retry_after } => {
            Rejection::new(503, "temporarily_unavailable", "the token issuer's keys are not available yet")
                .retry_after(retry_after)
        }
    }
}

/// The client address as a limit key (the stand-in when a limit's own key
/// is missing).
fn client_key(ctx: &RequestCtx) -> KeyValue<'static> {
    ctx.client_ip.map_or(KeyValue::Text(""), KeyValue::Ip)
}

/// The key of a `client_ip` or `header:NAME` limit; without the header, the
/// client address stands in.
fn pre_auth_key<'s>(limiter: &Limiter, session: &'s Session, ctx: &RequestCtx) -> KeyValue<'s> {
    match &limiter.config.key {
        RateKey::Header(name) => session
            .req_header()
            .headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map_or(client_key(ctx), KeyValue::Text),
        _ => client_key(ctx),
    }
}

fn enforce(limiter: &Limiter, key: KeyValue<'_>, ctx: &mut RequestCtx) -> Result<(), Rejection> {
    match limiter.check(key) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            ctx.outcome = Outcome::RateLimited;
            limiter.rejected.inc();
            Err(Rejection::new(429, "rate_limited", "too many requests; retry later")
                .retry_after(refusal.retry_after)
                .header("ratelimit-policy", limiter.policy_header().to_owned())
                .header("ratelimit", format!("\"{}\";r=0;t={}", limiter.name(), refusal.retry_after)))
        }
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` address that is not one.
fn client_ip(session: &Session, runtime: &Runtime) -> Option<IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())?;
    let trusted = |ip: &IpAddr| runtime.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for value in session.req_header().headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else { return Some(client) };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        return Some(ip);
                    }
                }
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
}
