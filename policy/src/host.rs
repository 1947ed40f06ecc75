//! Host normalisation for host-based routing.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host contains characters that are not allowed in a host name")]
    BadCharacter,
    #[error("host has an invalid port")]
    BadPort,
    #[error("host has an empty label")]
    EmptyLabel,
}

/// Normalise a `Host` header value or request-target authority: drop the
/// port, lower-case, drop one trailing dot. IPv6 literals keep their brackets.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']').ok_or(HostError::BadCharacter)?;
        let literal = &raw[..end + 2];
        if !rest[..end].bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(HostError::BadCharacter);
        }
        (literal, &rest[end + 1..])
    } else {
        match raw.find(':') {
            Some(i) => (&raw[..i], &raw[i..]),
            None => (raw, ""),
        }
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':').ok_or(HostError::BadPort)?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostError::BadPort);
        }
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.starts_with('[') {
        return Ok(lower(name));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return Err(HostError::BadCharacter);
    }
    // `example.com..` or `.example.com` would miss a route written for
    // `example.com` while some upstreams still serve it.
    if name.split('.').any(str::is_empty) {
        return Err(HostError::EmptyLabel);
    }
    Ok(lower(name))
}

fn lower(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize_host("API.Example.com:8080").unwrap(), "api.example.com");
        assert_eq!(normalize_host("example.com.").unwrap(), "example.com");
        assert_eq!(normalize_host("[::1]:443").unwrap(), "[::1]");
        assert_eq!(normalize_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert!(matches!(normalize_host("a.com").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn refuses() {
        assert_eq!(normalize_host(""), Err(HostError::Empty));
        assert_eq!(normalize_host(":80"), Err(HostError::Empty));
        assert_eq!(normalize_host("a b"), Err(HostError::BadCharacter));
        assert_eq!(normalize_host("a/b"), Err(HostError::BadCharacter));
        assert_eq!(normalize_host("a:x"), Err(HostError::BadPort));
        assert_eq!(normalize_host("a:"), Err(HostError::BadPort));
        assert_eq!(normalize_host("[::1"), Err(HostError::BadCharacter));
        assert_eq!(normalize_host("[::1]x"), Err(HostError::BadPort));
        assert_eq!(normalize_host("admin.example.com.."), Err(HostError::EmptyLabel));
        assert_eq!(normalize_host(".example.com"), Err(HostError::EmptyLabel));
        assert_eq!(normalize_host("a..b"), Err(HostError::EmptyLabel));
    }
}
