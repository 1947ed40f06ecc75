//! Headers that tell an upstream how to read a request other than from its
//! request line and peer address, and what portcullis says instead.
//!
//! - Rewrite headers make common frameworks run another method or route than
//!   the one the policy decided on (`X-HTTP-Method-Override: DELETE` on an
//!   allowed `GET`, `X-Original-URL: /admin` on a public path): removed from
//!   every request, whoever sent it, unless the route allows one (then
//!   admission decided on the overridden method or path, see [`super::overrides`]).
//! - Forwarding headers say who the client is and how it connected. From a
//!   peer that is not in `trusted_proxies` they are the client's own claim:
//!   removed. From a trusted proxy they are kept.
//! - Then the upstream's `forwarded_headers` are set from what portcullis
//!   saw: the client address, the `Host`, the scheme (`http`: portcullis
//!   listens in plain HTTP). From a trusted proxy `X-Forwarded-For` and
//!   `Forwarded` are extended with this hop and the others kept when present.

use std::fmt::Write;
use std::net::IpAddr;

use config::{ForwardedHeader, METHOD_OVERRIDE_HEADERS, URL_OVERRIDE_HEADERS};
use http::header::HOST;
use pingora::http::RequestHeader;
use pingora::Result;

/// Headers an upstream may read the client's address, host, scheme or
/// path prefix from: kept only from a trusted proxy.
pub(super) const FORWARDING_HEADERS: [&str; 23] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-original-host",
    "x-host",
    "x-url-scheme",
    "front-end-https",
];

/// The scheme clients reach portcullis with.
const SCHEME: &str = "http";

/// What portcullis saw of the connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// The address that connected.
    pub(super) peer: IpAddr,
    /// The client, as `gateway::client` resolved it.
    pub(super) client: IpAddr,
    /// The peer is in `trusted_proxies`.
    pub(super) trusted: bool,
}

/// Does a request header name denote `canonical` (lower case) once case
/// is ignored and `_` is read as `-` (many frameworks map both to the same
/// variable)?
pub(super) fn same_header(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name.bytes().zip(canonical.bytes()).all(|(a, b)| {
            let a = if a == b'_' { b'-' } else { a.to_ascii_lowercase() };
            a == b
        })
}

/// Must a client-sent header of this name go, given who sent it and the
/// override headers admission let through (exact lower-case names)?
pub(super) fn is_removed(name: &str, trusted: bool, kept: &[&str]) -> bool {
    let listed = |set: &[&str]| set.iter().any(|canonical| same_header(name, canonical));
    let rewrite = listed(&METHOD_OVERRIDE_HEADERS) || listed(&URL_OVERRIDE_HEADERS);
    (rewrite && !kept.contains(&name)) || (!trusted && listed(&FORWARDING_HEADERS))
}

/// Set the upstream's forwarding headers from what portcullis saw. Client
/// copies are already gone unless the peer is trusted.
pub(super) fn set(request: &mut RequestHeader, headers: &[ForwardedHeader], seen: Seen) -> Result<()> {
    let host = request.headers.get(HOST).and_then(|v| v.to_str().ok()).filter(|h| is_quotable(h)).map(str::to_owned);
    for header in headers {
        let name = header.name();
        let kept = seen.trusted && request.headers.contains_key(name);
        match header {
            ForwardedHeader::XForwardedFor => append(request, name, &seen.peer.to_string())?,
            ForwardedHeader::Forwarded => append(request, name, &forwarded_element(seen.peer, host.as_deref()))?,
            _ if kept => {}
            ForwardedHeader::XForwardedHost => {
                if let Some(host) = &host {
                    request.insert_header(name, host.as_str())?;
                }
            }
            ForwardedHeader::XForwardedProto => request.insert_header(name, SCHEME)?,
            ForwardedHeader::XRealIp => request.insert_header(name, seen.client.to_string())?,
        }
    }
    Ok(())
}

/// One value: the readable values already there (only a trusted proxy's
/// survive), then this hop's.
fn append(request: &mut RequestHeader, name: &'static str, hop: &str) -> Result<()> {
    let mut value = String::new();
    for earlier in request.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
        value.push_str(earlier);
        value.push_str(", ");
    }
    value.push_str(hop);
    request.insert_header(name, value)?;
    Ok(())
}

/// An RFC 7239 element for this hop: `for`, `host`, `proto`.
fn forwarded_element(peer: IpAddr, host: Option<&str>) -> String {
    let mut element = match peer {
        IpAddr::V4(ip) => format!("for={ip}"),
        IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    if let Some(host) = host {
        let _ = write!(element, ";host=\"{host}\""); // writing to a String cannot fail
    }
    let _ = write!(element, ";proto={SCHEME}");
    element
}

/// Fits in a quoted-string without escapes.
fn is_quotable(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        crate::test_support::request_with("GET", headers)
    }

    fn seen(trusted: bool) -> Seen {
        Seen { peer: "10.0.0.2".parse().unwrap(), client: "198.51.100.7".parse().unwrap(), trusted }
    }

    fn value(r: &RequestHeader, name: &str) -> Option<String> {
        r.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn rewrite_headers_go_whoever_sent_them() {
        for name in ["X-HTTP-Method-Override", "x_http_method", "X-Original-URL", "x-rewrite-url"] {
            assert!(is_removed(name, false, &[]), "{name}");
            assert!(is_removed(name, true, &[]), "{name}");
        }
        assert!(is_removed("X-Real-IP", false, &[]));
        assert!(is_removed("true_client_ip", false, &[]));
        assert!(!is_removed("X-Real-IP", true, &[]));
        assert!(!is_removed("x-request-id", false, &[]));
        // A route lets one through: that exact header, not its variants.
        let kept = ["x-http-method-override"];
        assert!(!is_removed("x-http-method-override", false, &kept));
        assert!(is_removed("x_http_method_override", false, &kept));
        assert!(is_removed("x-http-method", false, &kept));
    }

    #[test]
    fn untrusted_peers_get_what_portcullis_saw() {
        let mut r = request(&[("Host", "api.example.com")]);
        let s = Seen { peer: "192.0.2.1".parse().unwrap(), client: "192.0.2.1".parse().unwrap(), trusted: false };
        set(&mut r, &ForwardedHeader::ALL, s).unwrap();
        assert_eq!(value(&r, "x-forwarded-for").as_deref(), Some("192.0.2.1"));
        assert_eq!(value(&r, "x-forwarded-host").as_deref(), Some("api.example.com"));
        assert_eq!(value(&r, "x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(value(&r, "x-real-ip").as_deref(), Some("192.0.2.1"));
        assert_eq!(value(&r, "forwarded").as_deref(), Some("for=192.0.2.1;host=\"api.example.com\";proto=http"));
    }

    #[test]
    fn trusted_proxies_headers_are_kept_and_extended() {
        let mut r = request(&[
            ("Host", "internal"),
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Host", "api.example.com"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=198.51.100.7;proto=https"),
        ]);
        set(&mut r, &ForwardedHeader::ALL, seen(true)).unwrap();
        assert_eq!(value(&r, "x-forwarded-for").as_deref(), Some("198.51.100.7, 10.0.0.2"));
        assert_eq!(value(&r, "x-forwarded-host").as_deref(), Some("api.example.com"));
        assert_eq!(value(&r, "x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(value(&r, "x-real-ip").as_deref(), Some("198.51.100.7"));
        assert_eq!(
            value(&r, "forwarded").as_deref(),
            Some("for=198.51.100.7;proto=https, for=10.0.0.2;host=\"internal\";proto=http")
        );
    }

    #[test]
    fn only_the_configured_headers_are_set() {
        let mut r = request(&[("Host", "a")]);
        set(&mut r, &[ForwardedHeader::XForwardedProto], seen(false)).unwrap();
        assert_eq!(value(&r, "x-forwarded-proto").as_deref(), Some("http"));
        assert!(value(&r, "x-forwarded-for").is_none() && value(&r, "x-real-ip").is_none());
        let mut r = request(&[("Host", "a\"b")]);
        set(&mut r, &[ForwardedHeader::XForwardedHost, ForwardedHeader::Forwarded], seen(false)).unwrap();
        assert!(value(&r, "x-forwarded-host").is_none());
        assert_eq!(value(&r, "forwarded").as_deref(), Some("for=10.0.0.2;proto=http"));
        let v6 = Seen { peer: "2001:db8::1".parse().unwrap(), ..seen(false) };
        assert_eq!(forwarded_element(v6.peer, None), "for=\"[2001:db8::1]\";proto=http");
    }
}
