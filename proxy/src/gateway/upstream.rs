//! The upstream phases: which peer, and what the upstream request carries.
//!
//! Identity headers are the upstream's only source of truth about who is
//! calling, so every client-sent copy is removed on every request, public
//! or not: any case, with `_` for `-` (many frameworks map both to the same
//! variable), and any `Connection` entry naming one (which would make a
//! hop-by-hop-aware hop drop the value the proxy set).

use std::time::Duration;

use http::header::CONNECTION;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;

use super::request::RequestCtx;
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
    Box::new(peer)
}

/// Shape the request the upstream receives.
pub(super) fn rewrite(request: &mut RequestHeader, runtime: &Runtime, ctx: &RequestCtx) -> Result<()> {
    strip_identity_headers(request, runtime.identity_headers())?;
    if let Some(identity) = &ctx.identity {
        for (index, value) in identity.headers.iter() {
            if let Some(name) = runtime.identity_headers().get(usize::from(*index)) {
                request.insert_header(name.clone(), value.clone())?;
            }
        }
    }
    if let Some(target) = &ctx.forwarded_target {
        let uri = target
            .parse::<http::Uri>()
            .map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "canonical request target", e))?;
        request.set_uri(uri);
    }

    if let Some(ip) = ctx.client_ip {
        append_forwarded_for(request, ip)?;
    }
    Ok(())
}

/// Does a request header name denote this identity header once `_` is read as `-`?
fn names_identity_header(name: &str, identity: &HeaderName) -> bool {
    let identity = identity.as_str().as_bytes();
    name.len() == identity.len()
        && name.bytes().zip(identity).all(|(a, &b)| {
            let a = if a == b'_' { b'-' } else { a.to_ascii_lowercase() };
            a == b
        })
}

fn is_identity(name: &str, identities: &[HeaderName]) -> bool {
    identities.iter().any(|identity| names_identity_header(name, identity))
}

fn strip_identity_headers(request: &mut RequestHeader, identities: &[HeaderName]) -> Result<()> {
    if identities.is_empty() {
        return Ok(());
    }
    let doomed: Vec<HeaderName> =
        request.headers.keys().filter(|name| is_identity(name.as_str(), identities)).cloned().collect();
    for name in doomed {
        request.remove_header(&name);
    }
    // Most requests carry no Connection header naming an identity header
    // (or unreadable): look first, rebuild only when one must go.
    let names_one = |value: &HeaderValue| match value.to_str() {
        Ok(text) => text.split(',').any(|token| is_identity(token.trim(), identities)),
        Err(_) => true,
    };
    if !request.headers.get_all(CONNECTION).iter().any(names_one) {
        return Ok(());
    }
    let mut kept: Vec<String> = Vec::new();
    for text in request.headers.get_all(CONNECTION).iter().filter_map(|v| v.to_str().ok()) {
        let tokens = text.split(',').map(str::trim).filter(|t| !t.is_empty() && !is_identity(t, identities));
        kept.extend(tokens.map(str::to_owned));
    }
    request.remove_header(&CONNECTION);
    if !kept.is_empty() {
        request.insert_header(CONNECTION, kept.join(", "))?;
    }
    Ok(())
}

fn append_forwarded_for(request: &mut RequestHeader, ip: std::net::IpAddr) -> Result<()> {
    use std::fmt::Write;
    const XFF: &str = "x-forwarded-for";
    // One string: the hops the client sent (readable ones), then this one.
    let mut value = String::new();
    for hop in request.headers.get_all(XFF).iter().filter_map(|v| v.to_str().ok()) {
        value.push_str(hop);
        value.push_str(", ");
    }
    let _ = write!(value, "{ip}"); // writing to a String cannot fail
    request.insert_header(XFF, value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities() -> Vec<HeaderName> {
        vec![HeaderName::from_static("x-auth-subject"), HeaderName::from_static("x-auth-scopes")]
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    #[test]
    fn matches_any_case_and_underscores() {
        let id = HeaderName::from_static("x-auth-subject");
        assert!(names_identity_header("x-auth-subject", &id));
        assert!(names_identity_header("X-Auth-Subject", &id));
        assert!(names_identity_header("x_auth_subject", &id));
        assert!(names_identity_header("X_AUTH-subject", &id));
        assert!(!names_identity_header("x-auth-subjects", &id));
        assert!(!names_identity_header("x-auth-scopes", &id));
    }

    #[test]
    fn strips_spoofed_identity_headers() {
        let mut r = request(&[
            ("X-Auth-Subject", "admin"),
            ("x_auth_subject", "admin"),
            ("X-AUTH-SCOPES", "everything"),
            ("X-Other", "kept"),
        ]);
        strip_identity_headers(&mut r, &identities()).unwrap();
        let names: Vec<&str> = r.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-other"]);
    }

    #[test]
    fn removes_identity_headers_from_connection() {
        let mut r = request(&[("Connection", "keep-alive, X-Auth-Subject"), ("Connection", "x_auth_scopes")]);
        strip_identity_headers(&mut r, &identities()).unwrap();
        let values: Vec<&str> = r.headers.get_all(CONNECTION).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["keep-alive"]);

        let mut r = request(&[("Connection", "X-Auth-Subject")]);
        strip_identity_headers(&mut r, &identities()).unwrap();
        assert!(r.headers.get(CONNECTION).is_none());
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut r = request(&[("X-Forwarded-For", "203.0.113.9")]);
        append_forwarded_for(&mut r, "192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(r.headers.get("x-forwarded-for").unwrap(), "203.0.113.9, 192.0.2.1");
    }
}
