//! Request-path normalisation, host normalisation and route matching.
//!
//! Input: `[method byte] HOST '\n' PATH`, or `[method byte] PATH` when there is
//! no newline (no Host). The method byte picks from a fixed list.
//!
//! Invariants (for every accepted path):
//! - the canonical form starts with '/', has no "//", no "." or ".." segment;
//! - it contains no encoded separator, NUL or dot (%2F %5C %00 %2E), no
//!   double encoding (%25 followed by two hex digits), and every escape is
//!   upper case and stands for a byte that may not appear literally;
//! - it decodes to the same non-empty segments as the request (normalisation
//!   never changes what the path means), and to valid UTF-8 without a
//!   character whose NFKC or NFKD form holds `.`, `/`, `\`, `%`, `;`, `?`, `#`
//!   or a control, nor a control itself (an upstream that normalises Unicode
//!   would read another path);
//! - normalising it again gives the same string, not rewritten (the forwarded
//!   form is a fixed point, so a second portcullis or the policy re-run on
//!   the upstream's view agrees);
//! - `is_rewritten()` is true exactly when the canonical form differs;
//! - the route table's answer for the path equals its answer for the
//!   forwarded form, and equals a linear first-match scan.
//!
//! Refusals: a path containing a raw NUL, backslash, ';' or '#', an encoded
//! '/', '\' or NUL, or a segment that decodes to "." or "..", is never accepted.
#![no_main]

use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use libfuzzer_sys::fuzz_target;
use policy::{
    normalize, normalize_host, Access, HostPattern, HostSet, Method, MethodSet, PathPattern, Requirement, RouteSpec,
    RouteTable,
};
use std::sync::OnceLock;

#[path = "common.rs"]
mod common;
use common::{hex_value, is_literal, percent_decode, short};

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE"];

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let spec = |path: &str, methods: &[&str], hosts: &[&str]| RouteSpec {
            name: path.to_owned(),
            pattern: PathPattern::parse(path).unwrap(),
            methods: if methods.is_empty() {
                MethodSet::Any
            } else {
                MethodSet::Only(methods.iter().map(|m| Method::new(m)).collect())
            },
            hosts: HostSet(hosts.iter().map(|h| HostPattern::new(h)).collect()),
            access: Access::Protected(Requirement::default()),
            upstream: 0,
            rate_limits: Vec::new(),
        };
        RouteTable::new(vec![
            spec("/", &["GET"], &[]),
            spec("/healthz", &[], &[]),
            spec("/auth/**", &[], &[]),
            spec("/admin", &["GET"], &["admin.example.com"]),
            spec("/admin/**", &[], &["*.example.com"]),
            spec("/todos/**", &["GET", "HEAD"], &[]),
            spec("/todos/**", &["POST", "PUT", "PATCH", "DELETE"], &[]),
            spec("/todos/{id}/items/*", &[], &[]),
            spec("/users/{id}", &["GET"], &[]),
            spec("/users/*/posts/**", &[], &[]),
            spec("/v1/things:batchGet", &["POST"], &[]),
            spec("/.well-known/**", &["GET"], &[]),
            spec("/a/b/c", &[], &[]),
            spec("/files/*/raw", &["GET"], &["api.example.com"]),
            spec("/~user/x-y_z.json", &[], &[]),
            spec("/**", &["GET"], &["*.example.com"]),
        ])
    })
}

fn linear(table: &RouteTable, method: &str, host: Option<&str>, segments: &[&str]) -> Option<usize> {
    table
        .routes()
        .iter()
        .position(|route| route.applies_to(method, host) && route.pattern.matches(segments.iter().copied()))
}

fn check_host(raw: &str) -> Option<String> {
    let host = normalize_host(raw).ok()?.into_owned();
    assert!(!host.is_empty(), "{raw:?}: empty host accepted");
    assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{raw:?} -> {host:?}: not lower case");
    if !host.starts_with('[') {
        assert!(!host.contains(':'), "{raw:?} -> {host:?}: port kept");
        assert!(!host.ends_with('.'), "{raw:?} -> {host:?}: trailing dot kept");
        // "a.example.com.." would match neither an `a.example.com` nor a
        // `*.example.com` route (regressions/path_normalize/host-double-trailing-dot).
        assert!(!host.starts_with('.') && !host.contains(".."), "{raw:?} -> {host:?}: empty label");
        assert!(
            host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'),
            "{raw:?} -> {host:?}: bad character"
        );
    }
    // Idempotent: a normalised host is its own normal form.
    let again = normalize_host(&host).unwrap_or_else(|e| panic!("{raw:?} -> {host:?} -> {e:?}"));
    assert_eq!(again, host.as_str(), "{raw:?}: host normalisation is not idempotent");
    Some(host)
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, rest)) = data.split_first() else { return };
    let method = METHODS[usize::from(method) % METHODS.len()];
    let (host, raw) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let host = match host.map(std::str::from_utf8) {
        None => None,
        Some(Err(_)) => return,
        Some(Ok(h)) => match check_host(h) {
            Some(h) => Some(h),
            None => return,
        },
    };
    let Ok(raw) = std::str::from_utf8(raw) else { return };

    let result = normalize(raw);

    // Refusals that must hold whatever the rest of the path looks like.
    let lower = raw.to_ascii_lowercase();
    let must_refuse = raw.bytes().any(|b| matches!(b, 0 | b'\\' | b';' | b'#'))
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
        || raw
            .split('/')
            .any(|segment| matches!(percent_decode(segment.as_bytes()).as_deref(), Some(b".") | Some(b"..")));
    let normalized = match result {
        Ok(n) => n,
        Err(_) => return,
    };
    let text = normalized.as_str();
    let (raw_s, text_s) = (short(raw), short(text));
    assert!(!must_refuse, "{raw_s} accepted as {text_s}");

    // Shape of the canonical form.
    assert!(text.starts_with('/'), "{raw_s} -> {text_s}: not absolute");
    assert!(!text.contains("//"), "{raw_s} -> {text_s}: empty segment");
    for segment in text.split('/') {
        assert!(segment != "." && segment != "..", "{raw_s} -> {text_s}: dot segment");
    }
    let upper = text.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "%2E"] {
        assert!(!upper.contains(bad), "{raw_s} -> {text_s}: contains {bad}");
    }
    let ub = upper.as_bytes();
    for i in 0..ub.len().saturating_sub(4) {
        if &ub[i..i + 3] == b"%25" {
            assert!(
                !(hex_value(ub[i + 3]).is_some() && hex_value(ub[i + 4]).is_some()),
                "{raw_s} -> {text_s}: double encoding survives"
            );
        }
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' => i += 1,
            b'%' => {
                let (h, l) = (bytes.get(i + 1).copied(), bytes.get(i + 2).copied());
                let ok = matches!(h, Some(b'0'..=b'9' | b'A'..=b'F')) && matches!(l, Some(b'0'..=b'9' | b'A'..=b'F'));
                assert!(ok, "{raw_s} -> {text_s}: escape at {i} is not %XX upper case");
                let value = hex_value(h.unwrap()).unwrap() << 4 | hex_value(l.unwrap()).unwrap();
                assert!(!is_literal(value), "{raw_s} -> {text_s}: {value:#04x} should appear literally");
                i += 3;
            }
            b => {
                assert!(is_literal(b), "{raw_s} -> {text_s}: raw byte {b:#04x} in canonical form");
                i += 1;
            }
        }
    }

    // Same meaning: the decoded non-empty segments are unchanged.
    let decode_segments = |p: &str| -> Vec<Vec<u8>> {
        p.split('/').filter(|s| !s.is_empty()).map(|s| percent_decode(s.as_bytes()).expect("decodable")).collect()
    };
    let decoded = decode_segments(text);
    assert_eq!(decode_segments(raw), decoded, "{raw_s} -> {text_s}: meaning changed");
    let (nfkc, nfkd) = (ComposingNormalizerBorrowed::new_nfkc(), DecomposingNormalizerBorrowed::new_nfkd());
    for segment in &decoded {
        let segment = std::str::from_utf8(segment);
        assert!(segment.is_ok(), "{raw_s} -> {text_s}: decodes to invalid UTF-8");
        for c in segment.unwrap_or_default().chars().filter(|c| !c.is_ascii()) {
            let one = c.to_string();
            let reads_as_syntax = |form: &str| form.chars().any(|f| "./\\%;?#".contains(f) || f.is_ascii_control());
            assert!(
                !c.is_control() && !reads_as_syntax(&nfkc.normalize(&one)) && !reads_as_syntax(&nfkd.normalize(&one)),
                "{raw_s} -> {text_s}: {c:?} reads as a separator once normalised \
                 (regressions/path_normalize/fullwidth-dot-segment)"
            );
        }
    }
    // One trailing slash is kept exactly when the request had one after a segment.
    let raw_trailing = raw.len() > 1 && raw.ends_with('/') && !raw.trim_matches('/').is_empty();
    let text_trailing = text.len() > 1 && text.ends_with('/');
    assert_eq!(raw_trailing, text_trailing, "{raw_s} -> {text_s}: trailing slash");

    // is_rewritten means "differs from the request".
    assert_eq!(normalized.is_rewritten(), text != raw, "{raw_s} -> {text_s}: is_rewritten wrong");

    // The forwarded form is a fixed point (escaping can triple a path's
    // length: regressions/path_normalize/forwarded-form-too-long).
    let again = normalize(text)
        .unwrap_or_else(|e| panic!("{raw_s} -> {text_s} ({} bytes) is refused when forwarded: {e:?}", text.len()));
    assert_eq!(again.as_str(), text, "{raw_s}: not idempotent");
    assert!(!again.is_rewritten(), "{raw_s} -> {text_s}: forwarded form rewritten again");

    // Segments: non-empty, and what the matcher sees.
    let segments: Vec<&str> = normalized.segments().collect();
    assert!(segments.iter().all(|s| !s.is_empty()), "{raw_s}: empty segment yielded");
    assert_eq!(segments.join("/"), text.trim_matches('/'), "{raw_s}: segments do not cover the path");

    // Matching: the request, its forwarded form and a linear scan agree.
    let table = table();
    let host = host.as_deref();
    let found = table.find_index(method, host, &normalized);
    assert_eq!(found, table.find_index(method, host, &again), "{method} {raw_s}: forwarded form routes elsewhere");
    assert_eq!(found, linear(table, method, host, &segments), "{method} {host:?} {raw_s}: trie != linear scan");
    assert_eq!(table.find(method, host, &normalized).map(|r| &*r.name), found.map(|i| &*table.routes()[i].name));
});
