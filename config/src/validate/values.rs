//! The typed scalars every section shares: durations, addresses, URLs,
//! bounded numbers, names. Each reports its own mistake and returns `None`
//! (or a default), so a section goes on checking the rest of the entry.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use crate::diag::Reporter;
use crate::duration::parse_duration;
use crate::file::Text;
use crate::model::ClaimPath;

pub(super) fn claim_path(text: &Text, r: &mut Reporter<'_>) -> Option<ClaimPath> {
    let parts: Vec<String> = text.value.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        r.error(text, format!("'{}' is not a claim name or dotted claim path", text.value));
        return None;
    }
    Some(ClaimPath(parts))
}

/// `scheme://host:port` of an upstream, as (tls, host, port).
pub(super) fn upstream_url(text: &Text, r: &mut Reporter<'_>) -> Option<(bool, String, u16)> {
    let url = match url::Url::parse(&text.value) {
        Ok(url) => url,
        Err(e) => {
            r.error(text, format!("'{}' is not a URL: {e}", text.value));
            return None;
        }
    };
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            r.error(text, format!("upstream scheme must be http or https, not '{other}'"));
            return None;
        }
    };
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        r.error(text, "an upstream URL is scheme://host:port only; the request path is forwarded unchanged");
        return None;
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => addr.to_string(),
        Some(host) => host.to_string(),
        None => {
            r.error(text, "upstream URL has no host");
            return None;
        }
    };
    let port = url.port_or_known_default()?;
    Some((tls, host, port))
}

/// `localhost` or a loopback address: where plain http stays on the host.
pub(super) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// A URL keys or answers are fetched from. Plain http is allowed (a local
/// IdP in development) but warned about unless the host is loopback.
pub(super) fn http_url(text: &Text, what: &str, r: &mut Reporter<'_>) -> Option<String> {
    match url::Url::parse(&text.value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            if url.scheme() == "http" && !is_loopback(&url) {
                r.warn(
                    text,
                    format!("{what} uses plain http: what is exchanged over it can be read or forged in transit"),
                );
            }
            Some(text.value.clone())
        }
        _ => {
            r.error(text, format!("{what} must be an http(s) URL, got '{}'", text.value));
            None
        }
    }
}

pub(super) fn socket_addr(text: &Text, r: &mut Reporter<'_>) -> Option<SocketAddr> {
    match text.value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            r.error(text, format!("'{}' is not an address:port such as 0.0.0.0:8080 or [::]:8080", text.value));
            None
        }
    }
}

/// A network, or a single address as its own /32 or /128.
pub(super) fn cidr(text: &Text, r: &mut Reporter<'_>) -> Option<IpNet> {
    if let Ok(net) = text.value.parse::<IpNet>() {
        return Some(net.trunc());
    }
    if let Ok(addr) = text.value.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    r.error(text, format!("'{}' is not an IP address or CIDR such as 10.0.0.0/8", text.value));
    None
}

pub(super) fn duration(text: &Text, r: &mut Reporter<'_>) -> Option<Duration> {
    parse_duration(&text.value).map_err(|e| r.error(text, e)).ok()
}

pub(super) fn positive_duration(text: &Text, r: &mut Reporter<'_>) -> Option<Duration> {
    match duration(text, r)? {
        Duration::ZERO => {
            r.error(text, "must be longer than zero");
            None
        }
        d => Some(d),
    }
}

/// A count between `min` and `max`; the default when absent or out of range
/// (the error is reported, the placeholder never serves).
pub(super) fn bounded(
    value: Option<&Spanned<u64>>,
    default: u64,
    min: u64,
    max: u64,
    what: &str,
    r: &mut Reporter<'_>,
) -> usize {
    match value {
        None => default as usize,
        Some(v) if v.value < min || v.value > max => {
            r.error(v, format!("{what} must be between {min} and {max}"));
            default as usize
        }
        Some(v) => v.value as usize,
    }
}

pub(super) fn one_of<'a>(text: &Text, allowed: &[&'a str], r: &mut Reporter<'_>) -> Option<&'a str> {
    let found = allowed.iter().find(|a| **a == text.value).copied();
    if found.is_none() {
        r.error(text, format!("'{}' is not one of: {}", text.value, allowed.join(", ")));
    }
    found
}

/// Names of upstreams, issuers and rate limits: safe in logs and metrics labels.
pub fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn is_env_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Fits inside a quoted-string without escapes.
pub(super) fn is_quotable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// RFC 9110 token characters (header names, methods).
pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bytes() {
        assert!(is_token_byte(b'A'));
        assert!(!is_token_byte(b' '));
        assert!(!is_token_byte(b':'));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("TODO_JWT_SECRET"));
        assert!(!is_env_name("1ABC"));
        assert!(!is_env_name("A-B"));
    }
}
