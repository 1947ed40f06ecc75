//! Cookies on the wire: reading the request's `Cookie` headers, writing
//! `Set-Cookie`, and splitting a value too large for one cookie.
//!
//! Browsers keep cookies up to about 4096 bytes (name, value and
//! attributes), so a sealed session longer than [`CHUNK_BYTES`] is written
//! as `NAME` (the first part), `NAME-1`, `NAME-2`, … and read back by
//! joining the parts in order until one is missing.

use std::borrow::Cow;

use http::header::COOKIE;
use pingora::http::RequestHeader;

/// Largest value written into one cookie.
pub(crate) const CHUNK_BYTES: usize = 3800;
/// Most parts a session is split into (and read back from).
pub(crate) const MAX_CHUNKS: usize = 5;

/// The value of the cookie `name` on the request, if any. When a browser
/// sends a name twice (one per path), the first is used.
pub(crate) fn find<'r>(request: &'r RequestHeader, name: &str) -> Option<&'r str> {
    pairs(request).find_map(|(key, value)| (key == name).then(|| value.trim_matches('"')))
}

/// The names of the request's cookies that start with `prefix`.
pub(crate) fn names_with_prefix<'r>(request: &'r RequestHeader, prefix: &'r str) -> impl Iterator<Item = &'r str> {
    pairs(request).map(|(name, _)| name).filter(move |name| name.starts_with(prefix))
}

/// Whether the request carries a cookie `is_own` claims.
pub(crate) fn any(request: &RequestHeader, is_own: impl Fn(&str) -> bool) -> bool {
    pairs(request).any(|(name, _)| is_own(name))
}

/// Every `name=value` of the request's `Cookie` headers.
fn pairs(request: &RequestHeader) -> impl Iterator<Item = (&str, &str)> {
    request
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

/// A value split across `name`, `name-1`, …: joined, and how many parts it
/// had (so that a shorter rewrite can expire the rest). One pass over the
/// `Cookie` headers; a one-part value is borrowed, not copied.
pub(crate) fn find_chunked<'r>(request: &'r RequestHeader, name: &str) -> Option<(Cow<'r, str>, usize)> {
    let mut found: [Option<&'r str>; MAX_CHUNKS] = [None; MAX_CHUNKS];
    for (key, value) in pairs(request) {
        let index = match key.strip_prefix(name) {
            Some("") => 0,
            Some(rest) => match rest.strip_prefix('-').and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (1..MAX_CHUNKS).contains(&n) => n,
                _ => continue,
            },
            None => continue,
        };
        // When a browser sends a name twice (one per path), the first counts.
        found[index].get_or_insert(value.trim_matches('"'));
    }
    let first = found[0]?;
    let parts = 1 + found[1..].iter().take_while(|part| part.is_some()).count();
    if parts == 1 {
        return Some((Cow::Borrowed(first), 1));
    }
    let joined: String = found[..parts].iter().flatten().copied().collect();
    Some((Cow::Owned(joined), parts))
}

fn chunk_name(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_owned()
    } else {
        format!("{name}-{index}")
    }
}

/// `Set-Cookie` values that store `value` under `name` for `max_age`
/// seconds, in as many parts as it needs, and expire parts a previous,
/// longer value left (`previous_parts`). `None` when it would need more
/// than [`MAX_CHUNKS`] parts.
pub(crate) fn set_chunked(name: &str, value: &str, max_age: u64, previous_parts: usize) -> Option<Vec<String>> {
    let parts: Vec<&str> = if value.is_empty() {
        vec![""]
    } else {
        // Base64url is ASCII: splitting at byte offsets is safe.
        value.as_bytes().chunks(CHUNK_BYTES).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect()
    };
    if parts.len() > MAX_CHUNKS {
        return None;
    }
    let mut out: Vec<String> =
        parts.iter().enumerate().map(|(i, part)| set(&chunk_name(name, i), part, max_age)).collect();
    out.extend((parts.len()..previous_parts).map(|i| expire(&chunk_name(name, i))));
    Some(out)
}

/// Expire `name` and its `parts - 1` continuation parts.
pub(crate) fn expire_chunked(name: &str, parts: usize) -> Vec<String> {
    (0..parts.max(1)).map(|i| expire(&chunk_name(name, i))).collect()
}

/// One cookie for the whole site: `Path=/`, `Secure`, `HttpOnly`,
/// `SameSite=Lax` (sent on top-level navigations from the IdP back to the
/// callback, never on cross-site subrequests or POSTs). No `Domain`: the
/// `__Host-` prefix requires its absence.
pub(crate) fn set(name: &str, value: &str, max_age: u64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax")
}

pub(crate) fn expire(name: &str) -> String {
    set(name, "", 0)
}

/// A `Cookie` header without the cookies `is_own` claims (the proxy's own
/// are not the upstream's business); `None` when nothing is left.
pub(crate) fn strip(header: &str, is_own: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !is_own(pair.split_once('=').map_or(*pair, |(name, _)| name)))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cookies: &[&str]) -> RequestHeader {
        let mut request = RequestHeader::build("GET", b"/", None).expect("request");
        for cookie in cookies {
            request.append_header("cookie", *cookie).expect("header");
        }
        request
    }

    #[test]
    fn finds_a_cookie_among_others_and_headers() {
        let r = request(&["a=1; __Host-p=xyz; b=2", "c=3"]);
        assert_eq!(find(&r, "__Host-p"), Some("xyz"));
        assert_eq!(find(&r, "c"), Some("3"));
        assert_eq!(find(&r, "__Host"), None);
        assert_eq!(find(&r, "p"), None);
    }

    #[test]
    fn long_values_round_trip_through_parts() {
        let value = "v".repeat(CHUNK_BYTES * 2 + 10);
        let set = set_chunked("s", &value, 60, 4).expect("fits");
        assert_eq!(set.len(), 4, "three parts and one expired leftover");
        assert!(set[3].starts_with("s-3=; ") && set[3].contains("Max-Age=0"));
        let cookies: Vec<String> =
            set[..3].iter().map(|c| c.split(';').next().unwrap_or_default().to_owned()).collect();
        let r = request(&[&cookies.join("; ")]);
        assert_eq!(find_chunked(&r, "s"), Some((Cow::Owned(value), 3)));
        assert!(set_chunked("s", &"v".repeat(CHUNK_BYTES * MAX_CHUNKS + 1), 60, 0).is_none());
    }

    #[test]
    fn own_cookies_are_stripped() {
        let own = |name: &str| name == "s" || name.starts_with("s-");
        assert_eq!(strip("a=1; s=x; s-1=y; b=2", own).as_deref(), Some("a=1; b=2"));
        assert_eq!(strip("s=x;s-signin-abc=1", own), None);
        assert_eq!(strip("sa=1", own).as_deref(), Some("sa=1"));
    }

    #[test]
    fn cookies_are_secure_http_only_and_lax() {
        let c = set("__Host-p", "v", 3600);
        assert_eq!(c, "__Host-p=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax");
        assert!(!c.contains("Domain"));
    }
}
