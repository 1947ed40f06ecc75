//! The upstream phases: which peer, and what the upstream request carries.
//!
//! Identity headers are the upstream's only source of truth about who is
//! calling, so every client-sent copy is removed on every request, public
//! or not: any case, with `_` for `-` (many frameworks map both to the same
//! variable), and any `Connection` entry naming one (which would make a
//! hop-by-hop-aware hop drop the value the proxy set). Rewrite and
//! forwarding headers go the same way (see [`forwarding`]).

use std::time::Duration;

use config::CertField;
use http::header::{AUTHORIZATION, CONNECTION};
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;
use policy::ClientCertificate;

use super::forwarding::{self, same_header, Seen};
use super::request::RequestCtx;
use crate::auth::source::api_key::SCHEME;
use crate::runtime::{Runtime, UpstreamTarget};

/// How long an idle upstream connection is kept for reuse.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn peer(target: &UpstreamTarget) -> Box<HttpPeer> {
    let upstream = &target.config;
    let mut peer = HttpPeer::new(target.address, upstream.tls, upstream.sni.clone());
    peer.options.connection_timeout = Some(upstream.connect_timeout);
    peer.options.total_connection_timeout = Some(upstream.connect_timeout * 2);
    peer.options.read_timeout = Some(upstream.read_timeout);
    peer.options.write_timeout = Some(upstream.read_timeout);
    peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
    if upstream.tls {
        peer.options.verify_cert = upstream.upstream_tls.verify;
        peer.options.verify_hostname = upstream.upstream_tls.verify;
        peer.options.ca = target.tls.ca.clone();
        peer.client_cert_key = target.tls.client.clone();
    }
    if upstream.http2 {
        // HTTP/2 only: ALPN h2 over TLS, prior knowledge (h2c) in clear.
        peer.options.set_http_version(2, 2);
    }
    Box::new(peer)
}

/// Shape the request the upstream receives.
pub(super) fn rewrite(
    request: &mut RequestHeader,
    runtime: &Runtime,
    ctx: &RequestCtx,
    seen: Option<Seen>,
    certificate: Option<&ClientCertificate>,
) -> Result<()> {
    let identities = runtime.identity_headers();
    let trusted = seen.is_some_and(|seen| seen.trusted);
    let kept = &ctx.kept_overrides;
    strip_headers(request, |name| is_identity(name, identities) || forwarding::is_removed(name, trusted, kept))?;
    strip_api_keys(request, runtime);
    strip_session_cookies(request, runtime)?;
    if let Some(identity) = &ctx.identity {
        for (index, value) in identity.headers.iter() {
            if let Some(name) = runtime.identity_headers().get(usize::from(*index)) {
                request.insert_header(name, value.clone())?;
            }
        }
    }
    // The client certificate's identity headers: facts of the connection,
    // verified by the handshake, on whatever route it is.
    if let Some(certificate) = certificate {
        for (name, field) in runtime.client_cert_headers() {
            if let Some(value) = certificate_header(certificate, *field) {
                request.insert_header(name, value)?;
            }
        }
    }
    if let Some(target) = &ctx.forwarded_target {
        let uri = target
            .parse::<http::Uri>()
            .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "canonical request target", e))?;
        request.set_uri(uri);
    }
    assert_identity(request, runtime, ctx)?;

    let upstream = ctx.route.and_then(|route| runtime.upstream_of(route));
    if let Some((seen, upstream)) = seen.zip(upstream) {
        forwarding::set(request, &upstream.config.forwarded_headers, seen)?;
    }
    Ok(())
}

/// The signed assertion (`upstream_assertion`): a client-sent one never
/// passes; an authenticated request gets one for exactly the method and
/// path the upstream receives (after normalisation and overrides).
fn assert_identity(request: &mut RequestHeader, runtime: &Runtime, ctx: &RequestCtx) -> Result<()> {
    let Some(signer) = runtime.assertion() else { return Ok(()) };
    request.remove_header(signer.header_name());
    let (Some(identity), Some(upstream)) = (&ctx.identity, ctx.route.and_then(|route| runtime.upstream_of(route)))
    else {
        return Ok(());
    };
    let assertion = crate::assertion::Assertion {
        identity,
        upstream: &upstream.config.name,
        method: request.method.as_str(),
        path: request.uri.path(),
    };
    match signer.sign(&assertion) {
        Some(jwt) => request.insert_header(signer.header_name(), jwt),
        // Fail closed: an upstream that relies on the assertion must not
        // get a request without one.
        None => pingora::Error::e_explain(pingora::ErrorType::InternalError, "could not sign the upstream assertion"),
    }
}

/// Remove the proxy's own cookies (the sealed session, sign-in cookies):
/// the upstream learns who called from the identity headers.
fn strip_session_cookies(request: &mut RequestHeader, runtime: &Runtime) -> Result<()> {
    // Most requests carry none of ours: nothing to copy then.
    let Some(sessions) = runtime.sessions().filter(|s| s.carries_own_cookie(request)) else { return Ok(()) };
    let headers: Vec<String> = request
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    if headers.is_empty() {
        return Ok(());
    }
    request.remove_header(&http::header::COOKIE);
    // HTTP/1.1 clients send one Cookie header; joined, the rest stays.
    let kept = crate::session::strip_cookies(&headers.join("; "), |name| sessions.is_own_cookie(name));
    if let Some(kept) = kept {
        request.insert_header(http::header::COOKIE, kept)?;
    }
    Ok(())
}

/// Remove API keys from a request about to go upstream: the operator's
/// header and `Authorization: ApiKey`. The upstream learns who called from
/// the identity headers; a key it never sees cannot leak from it. Bearer
/// tokens are left as they are (`Authorization` is forwarded unchanged).
fn strip_api_keys(request: &mut RequestHeader, runtime: &Runtime) {
    let auth = runtime.auth();
    if let Some(header) = auth.api_key_header() {
        request.remove_header(header);
    }
    let is_key = |value: &http::HeaderValue| {
        let value = value.as_bytes().trim_ascii_start();
        value.len() >= SCHEME.len() && value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME.as_bytes())
    };
    if auth.has_api_keys() && request.headers.get_all(AUTHORIZATION).iter().any(is_key) {
        request.remove_header(&AUTHORIZATION);
    }
}

/// One field of a client certificate as a header value (`None` when the
/// certificate has no such field, or it cannot be a header value).
fn certificate_header(certificate: &ClientCertificate, field: CertField) -> Option<HeaderValue> {
    match field {
        CertField::Subject => credentials::claims::safe_header_value(&certificate.subject_text),
        CertField::Uri => certificate.uris.first().and_then(|uri| credentials::claims::safe_header_value(uri)),
        CertField::Dns => certificate.dns_names.first().and_then(|dns| credentials::claims::safe_header_value(dns)),
        CertField::Sha256 => {
            let hex: String = certificate.sha256.iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&hex).ok()
        }
    }
}

fn is_identity(name: &str, identities: &[HeaderName]) -> bool {
    identities.iter().any(|identity| same_header(name, identity.as_str()))
}

/// Remove every header `doomed` names, and every `Connection` entry naming
/// one.
fn strip_headers(request: &mut RequestHeader, doomed: impl Fn(&str) -> bool) -> Result<()> {
    let names: Vec<HeaderName> = request.headers.keys().filter(|name| doomed(name.as_str())).cloned().collect();
    for name in names {
        request.remove_header(&name);
    }
    // Most requests carry no Connection header naming one (or unreadable):
    // look first, rebuild only when one must go.
    let names_one = |value: &HeaderValue| match value.to_str() {
        Ok(text) => text.split(',').any(|token| doomed(token.trim())),
        Err(_) => true,
    };
    if !request.headers.get_all(CONNECTION).iter().any(names_one) {
        return Ok(());
    }
    let mut kept: Vec<String> = Vec::new();
    for text in request.headers.get_all(CONNECTION).iter().filter_map(|v| v.to_str().ok()) {
        let tokens = text.split(',').map(str::trim).filter(|t| !t.is_empty() && !doomed(t));
        kept.extend(tokens.map(str::to_owned));
    }
    request.remove_header(&CONNECTION);
    if !kept.is_empty() {
        request.insert_header(CONNECTION, kept.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities() -> Vec<HeaderName> {
        vec![HeaderName::from_static("x-auth-subject"), HeaderName::from_static("x-auth-scopes")]
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        crate::test_support::request_with("GET", headers)
    }

    #[test]
    fn matches_any_case_and_underscores() {
        let id = "x-auth-subject";
        assert!(same_header("x-auth-subject", id));
        assert!(same_header("X-Auth-Subject", id));
        assert!(same_header("x_auth_subject", id));
        assert!(same_header("X_AUTH-subject", id));
        assert!(!same_header("x-auth-subjects", id));
        assert!(!same_header("x-auth-scopes", id));
    }

    #[test]
    fn strips_spoofed_identity_headers() {
        let mut r = request(&[
            ("X-Auth-Subject", "admin"),
            ("x_auth_subject", "admin"),
            ("X-AUTH-SCOPES", "everything"),
            ("X-Other", "kept"),
        ]);
        strip_headers(&mut r, |name| is_identity(name, &identities())).unwrap();
        let names: Vec<&str> = r.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-other"]);
    }

    #[test]
    fn removes_identity_headers_from_connection() {
        let mut r = request(&[("Connection", "keep-alive, X-Auth-Subject"), ("Connection", "x_auth_scopes")]);
        strip_headers(&mut r, |name| is_identity(name, &identities())).unwrap();
        let values: Vec<&str> = r.headers.get_all(CONNECTION).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["keep-alive"]);

        let mut r = request(&[("Connection", "X-Auth-Subject")]);
        strip_headers(&mut r, |name| is_identity(name, &identities())).unwrap();
        assert!(r.headers.get(CONNECTION).is_none());
    }
}
