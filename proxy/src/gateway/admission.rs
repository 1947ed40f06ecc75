//! The request-filter phase: everything that decides whether a request may
//! go upstream, in order. Nothing here writes to the client; [`admit`]
//! returns the verdict, and the refusal carries its outcome and answer
//! together.

use pingora::prelude::Session;
use policy::Access;

use super::authenticate::{self, Target};
use super::cors::{self, PreflightAnswer};
use super::request::RequestCtx;
use super::respond::Denied;
use super::{client, hygiene, limits, overrides, routing, sessions};
use crate::labels::Outcome;
use crate::runtime::Runtime;
use crate::tls;

/// A request admission lets through or answers itself without refusing.
pub(crate) enum Admitted {
    /// Forward under this outcome (public or allowed).
    Forward(Outcome),
    /// A CORS preflight the route's policy allows: answered here, never
    /// forwarded.
    Preflight(PreflightAnswer),
    /// A document the proxy publishes itself (the assertion JWKS).
    Document(bytes::Bytes),
}

/// Decide the request: forward it (with its outcome), answer a CORS
/// preflight, or the refusal. Fills in what later phases need (route,
/// client address, identity, forwarded target).
pub(crate) async fn admit(session: &mut Session, runtime: &Runtime, ctx: &mut RequestCtx) -> Result<Admitted, Denied> {
    ctx.client_ip = client::client_ip(session, runtime.trusted_proxies());
    hygiene::check_headers(session.req_header())?;
    // The keys upstreams verify assertions with, for anyone to fetch.
    if let Some(signer) = runtime.assertion() {
        let request = session.req_header();
        let read = matches!(request.method, http::Method::GET | http::Method::HEAD);
        if read && request.uri.path() == signer.jwks_path() {
            return Ok(Admitted::Document(signer.jwks().clone()));
        }
    }
    // The proxy's own sign-in paths, before any route is looked at.
    if let Some(answer) = sessions::own_path(session.req_header(), runtime).await {
        return Err(answer);
    }
    // A preflight carries no credential by design (Fetch): where a CORS
    // policy applies, it is answered before limits and authentication.
    if let Some(preflight) = cors::preflight_request(session.req_header()) {
        let routed = routing::route_request_as(session.req_header(), preflight.method, runtime)?;
        if let Some(policy) = runtime.cors_of(routed.route) {
            ctx.route = routed.route;
            return cors::decide_preflight(policy, &preflight).map(Admitted::Preflight);
        }
    }
    admit_request(session, runtime, ctx).await.map(Admitted::Forward)
}

/// Everything but a preflight.
async fn admit_request(session: &mut Session, runtime: &Runtime, ctx: &mut RequestCtx) -> Result<Outcome, Denied> {
    let mut routed = routing::route_request(session.req_header(), runtime)?;
    ctx.kept_overrides = overrides::apply(session.req_header(), runtime, &mut routed)?;
    ctx.route = routed.route;
    ctx.forwarded_target = routed.forwarded_target;
    let route = routed.route.and_then(|index| runtime.routes().routes().get(index));
    // The route's client certificates first: a local comparison, cheaper
    // than anything after it.
    let connection = tls::connection_tls(session);
    let certificate = tls::client_certificate(connection.as_deref());
    let certificates = runtime.client_certs_of(routed.route);
    if let Some(required) = certificates {
        if let Some(denied) = Denied::client_certificate(required.rule.verdict(certificate)) {
            return Err(denied);
        }
    }
    if let Some(route) = route {
        limits::before_authentication(session, runtime, route, ctx.client_ip).await?;
        if matches!(route.access, Access::Public) {
            // `credentials: [client_cert]`: admitted by the certificate.
            let alone = certificates.is_some_and(|c| c.alone);
            return Ok(if alone { Outcome::Allow } else { Outcome::Public });
        }
    }
    let accepts = runtime.accepted_credentials(routed.route);
    let target = Target { index: routed.route, route, path: routed.path.as_ref(), certificate };
    let authorized = authenticate::authorize(session.req_header(), ctx.client_ip, runtime, target, accepts).await?;
    if let Some(route) = route {
        limits::by_subject(runtime, route, &authorized.identity)
            .await
            .map_err(|d| d.with_cookies(authorized.cookies.clone()))?;
    }
    ctx.identity = Some(authorized.identity);
    ctx.session_cookies = authorized.cookies;
    Ok(Outcome::Allow)
}
