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
//!   saw: the client address, the `Host`, the scheme (`https` on a TLS
//!   connection, else `http`). From a trusted proxy `X-Forwarded-For` and
//!   `Forwarded` are extended with this hop and the others kept when present.
//!
//! This runs on every forwarded request: the peer address is formatted once
//! (IPv4 without the formatting machinery) and a header with no earlier
//! value is set without building a list.

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

/// What portcullis saw of the connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// The address that connected.
    pub(super) peer: IpAddr,
    /// The client, as `gateway::client` resolved it.
    pub(super) client: IpAddr,
    /// The peer is in `trusted_proxies`.
    pub(super) trusted: bool,
    /// The client connected over TLS.
    pub(super) tls: bool,
}

impl Seen {
    /// The scheme the client reached portcullis with.
    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
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
    // The client's own value, shared rather than copied.
    let host = request.headers.get(HOST).filter(|v| v.to_str().is_ok_and(is_quotable)).cloned();
    let peer = address_text(seen.peer);
    for header in headers {
        let name = header.name();
        match header {
            ForwardedHeader::XForwardedFor => append(request, name, &peer)?,
            ForwardedHeader::Forwarded => {
                let host = host.as_ref().and_then(|v| v.to_str().ok());
                append(request, name, &forwarded_element(seen.peer, &peer, host, seen.scheme()))?
            }
            // A trusted proxy's value is kept.
            _ if seen.trusted && request.headers.contains_key(name) => {}
            ForwardedHeader::XForwardedHost => {
                if let Some(host) = &host {
                    request.insert_header(name, host.clone())?;
                }
            }
            ForwardedHeader::XForwardedProto => request.insert_header(name, seen.scheme())?,
            ForwardedHeader::XRealIp if seen.client == seen.peer => request.insert_header(name, peer.as_str())?,
            ForwardedHeader::XRealIp => request.insert_header(name, address_text(seen.client))?,
        }
    }
    Ok(())
}

/// One value: the readable values already there (only a trusted proxy's
/// survive), then this hop's.
fn append(request: &mut RequestHeader, name: &'static str, hop: &str) -> Result<()> {
    if !request.headers.contains_key(name) {
        return request.insert_header(name, hop);
    }
    let mut value = String::new();
    for earlier in request.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
        value.push_str(earlier);
        value.push_str(", ");
    }
    value.push_str(hop);
    request.insert_header(name, value)
}

/// An address as header text. IPv4 by hand: `Display` goes through the
/// formatting machinery, a few hundred instructions per address on every
/// forwarded request.
fn address_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// An RFC 7239 element for this hop: `for`, `host`, `proto`.
fn forwarded_element(peer: IpAddr, peer_text: &str, host: Option<&str>, scheme: &str) -> String {
    let mut element = match peer {
        IpAddr::V4(_) => format!("for={peer_text}"),
        IpAddr::V6(_) => format!("for=\"[{peer_text}]\""),
    };
    if let Some(host) = host {
        let _ = write!(element, ";host=\"{host}\""); // writing to a String cannot fail
    }
    let _ = write!(element, ";proto={scheme}");
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
        Seen { peer: "10.0.0.2".parse().unwrap(), client: "198.51.100.7".parse().unwrap(), trusted, tls: false }
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
        let s = Seen {
            peer: "192.0.2.1".parse().unwrap(),
            client: "192.0.2.1".parse().unwrap(),
            trusted: false,
            tls: false,
        };
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
        assert_eq!(
            forwarded_element(v6.peer, &address_text(v6.peer), None, "http"),
            "for=\"[2001:db8::1]\";proto=http"
        );
    }

    #[test]
    fn a_tls_connection_is_forwarded_as_https() {
        let mut r = request(&[("Host", "api.example.com")]);
        set(&mut r, &ForwardedHeader::ALL, Seen { tls: true, ..seen(false) }).unwrap();
        assert_eq!(value(&r, "x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(value(&r, "forwarded").as_deref(), Some("for=10.0.0.2;host=\"api.example.com\";proto=https"));
        // A trusted proxy's own scheme is still kept.
        let mut r = request(&[("Host", "a"), ("X-Forwarded-Proto", "http")]);
        set(&mut r, &[ForwardedHeader::XForwardedProto], Seen { tls: true, ..seen(true) }).unwrap();
        assert_eq!(value(&r, "x-forwarded-proto").as_deref(), Some("http"));
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        for a in [0u8, 1, 9, 10, 99, 100, 199, 200, 255] {
            for b in [0u8, 7, 42, 100, 255] {
                let ip = IpAddr::from([a, b, 255 - a, b / 2]);
                assert_eq!(address_text(ip), ip.to_string());
            }
        }
        for text in ["::1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1:2:3:4"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string());
        }
    }
}
