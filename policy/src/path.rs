//! Request-path normalisation.
//!
//! The policy decides on one canonical form of the path, and the upstream
//! receives exactly that form. Anything that could make the two disagree (dot
//! segments, encoded separators, double encoding, matrix parameters, invalid
//! UTF-8) is rejected instead of being guessed at.
//!
//! Canonical form: segments joined by single `/`; unreserved characters,
//! sub-delimiters (except `;`), `:` and `@` appear literally, every other byte
//! as `%XX` with upper-case hex. Empty segments collapse; one trailing `/` is
//! kept because upstreams may tell `/a` and `/a/` apart.

use std::borrow::Cow;
use std::fmt;

use crate::lookalike::LOOKALIKES;

/// Why a request path was refused. Each one answers 400 and is never forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains a '.' or '..' segment")]
    DotSegment,
    #[error("path contains an encoded '/'")]
    EncodedSlash,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a control character, or a raw space")]
    Control,
    #[error("path contains a malformed percent-encoding")]
    BadPercentEncoding,
    #[error("path is percent-encoded twice")]
    DoubleEncoding,
    #[error("path contains ';' (matrix parameters are not accepted)")]
    Semicolon,
    #[error("path contains '#'")]
    Fragment,
    #[error("path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error(
        "path contains a character that Unicode normalisation reads as '.', '/', '\\', '%', ';', '?', '#' or a control"
    )]
    Lookalike,
    #[error("path is longer than {0} bytes")]
    TooLong(usize),
}

/// Longest raw path accepted; far above any real API path, low enough that a
/// hostile one cannot make normalisation costly.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// A request path in canonical form. Borrowed when the request already used
/// the canonical form, which is the common case and costs no allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a>(Cow<'a, str>);

impl<'a> NormalizedPath<'a> {
    /// The canonical path: what the policy matches and the upstream receives.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when normalisation changed the request's path, so the upstream
    /// request must be rewritten.
    pub fn is_rewritten(&self) -> bool {
        matches!(self.0, Cow::Owned(_))
    }

    pub fn into_owned(self) -> NormalizedPath<'static> {
        NormalizedPath(Cow::Owned(self.0.into_owned()))
    }

    /// The path's segments for matching. A single trailing `/` does not
    /// count: `/admin/` is matched as `/admin`, so a policy written for
    /// `/admin` cannot be side-stepped by adding a slash.
    pub fn segments(&self) -> Segments<'_> {
        let trimmed = self.0.strip_prefix('/').unwrap_or(&self.0);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        Segments { rest: if trimmed.is_empty() { None } else { Some(trimmed) } }
    }
}

impl fmt::Debug for NormalizedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NormalizedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Iterator over the segments of a [`NormalizedPath`]; never yields an empty one.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.split_once('/') {
            Some((head, tail)) => {
                self.rest = Some(tail);
                Some(head)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// How a byte may appear in the canonical form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Appears literally: unreserved, sub-delims except `;`, `:` and `@`.
    Literal,
    /// Appears percent-encoded.
    Encoded,
}

fn class(byte: u8) -> Class {
    match byte {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => Class::Literal,
        b'-' | b'.' | b'_' | b'~' => Class::Literal,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' => Class::Literal,
        b':' | b'@' => Class::Literal,
        _ => Class::Encoded,
    }
}

/// True when `byte` may appear literally in a canonical path segment. Route
/// pattern literals are restricted to these bytes, which is why matching on
/// the canonical form equals matching on the decoded form.
pub fn is_canonical_literal(byte: u8) -> bool {
    class(byte) == Class::Literal
}

/// The value of one hex digit of a `%XX` escape (RFC 3986 HEXDIG, either case).
pub fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Refusals that apply to a raw byte (as sent, not decoded).
fn check_raw(byte: u8) -> Result<(), PathError> {
    match byte {
        0 => Err(PathError::Nul),
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::Semicolon),
        b'#' => Err(PathError::Fragment),
        0x01..=0x20 | 0x7f => Err(PathError::Control),
        _ => Ok(()),
    }
}

/// Refusals that apply to a byte obtained by percent-decoding. An encoded
/// space or `#` is data; an encoded separator, `;` or control byte is not.
fn check_decoded(byte: u8) -> Result<(), PathError> {
    match byte {
        b'/' => Err(PathError::EncodedSlash),
        b' ' | b'#' => Ok(()),
        _ => check_raw(byte),
    }
}

/// Normalise the path part of a request target (everything before `?`).
pub fn normalize(raw: &str) -> Result<NormalizedPath<'_>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(MAX_PATH_BYTES));
    }
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(bytes)? {
        return Ok(NormalizedPath(Cow::Borrowed(raw)));
    }
    let canonical = canonicalize(bytes)?;
    // Re-encoding can triple a path's length; the forwarded form must itself
    // be acceptable (normalising it again gives it back unchanged).
    if canonical.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(MAX_PATH_BYTES));
    }
    // Already-canonical paths with percent-escapes end up here too; keep
    // them borrowed so `is_rewritten` means "differs from the request".
    if canonical == raw {
        return Ok(NormalizedPath(Cow::Borrowed(raw)));
    }
    Ok(NormalizedPath(Cow::Owned(canonical)))
}

/// Fast check: is the raw path already canonical? Errors on bytes that are
/// refused whatever their context, so the slow path only sees repairable input.
fn is_canonical(bytes: &[u8]) -> Result<bool, PathError> {
    let mut canonical = true;
    let mut segment_start = 1;
    for (i, &byte) in bytes.iter().enumerate().skip(1) {
        if byte == b'/' {
            let segment = &bytes[segment_start..i];
            if segment.is_empty() || segment == b"." || segment == b".." {
                canonical = false;
            }
            segment_start = i + 1;
        } else {
            check_raw(byte)?;
            if class(byte) != Class::Literal {
                canonical = false;
            }
        }
    }
    let last = &bytes[segment_start..];
    if last == b"." || last == b".." {
        canonical = false;
    }
    Ok(canonical)
}

/// Slow path: decode, validate and re-encode every segment.
fn canonicalize(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut decoded: Vec<u8> = Vec::with_capacity(64);
    let segments: Vec<&[u8]> = bytes[1..].split(|&b| b == b'/').collect();
    let trailing_slash = segments.len() > 1 && segments.last().is_some_and(|s| s.is_empty());
    for raw_segment in segments.iter().filter(|s| !s.is_empty()) {
        decode_segment(raw_segment, &mut decoded)?;
        if decoded == b"." || decoded == b".." {
            return Err(PathError::DotSegment);
        }
        let Ok(text) = std::str::from_utf8(&decoded) else {
            return Err(PathError::InvalidUtf8);
        };
        if has_lookalike(text) {
            return Err(PathError::Lookalike);
        }
        if has_percent_triplet(&decoded) {
            return Err(PathError::DoubleEncoding);
        }
        out.push('/');
        encode_segment(&decoded, &mut out);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

fn decode_segment(raw: &[u8], decoded: &mut Vec<u8>) -> Result<(), PathError> {
    decoded.clear();
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte == b'%' {
            let high = raw.get(i + 1).copied().and_then(hex_value);
            let low = raw.get(i + 2).copied().and_then(hex_value);
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathError::BadPercentEncoding);
            };
            let value = high << 4 | low;
            check_decoded(value)?;
            decoded.push(value);
            i += 3;
        } else {
            check_raw(byte)?;
            decoded.push(byte);
            i += 1;
        }
    }
    Ok(())
}

/// Does the decoded segment hold a character that an upstream applying
/// Unicode normalisation (NFKC and friends) would read as a separator, a
/// dot, an escape or a control (U+FF0E FULLWIDTH FULL STOP is `.`)? Only
/// non-ASCII text needs a look, so the common path costs one scan.
fn has_lookalike(text: &str) -> bool {
    !text.is_ascii() && text.chars().any(|c| !c.is_ascii() && LOOKALIKES.binary_search(&c).is_ok())
}

/// A `%XX` left after one round of decoding means the client encoded twice;
/// an upstream that decodes again would see something the policy did not.
fn has_percent_triplet(decoded: &[u8]) -> bool {
    decoded.windows(3).any(|w| w[0] == b'%' && hex_value(w[1]).is_some() && hex_value(w[2]).is_some())
}

fn encode_segment(decoded: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in decoded {
        if class(byte) == Class::Literal {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        normalize(raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for raw in ["/", "/todos", "/todos/42", "/a/b/", "/v1/things:batchGet", "/~user/x-y_z.json"] {
            let n = normalize(raw).unwrap();
            assert!(!n.is_rewritten(), "{raw}");
            assert_eq!(n.as_str(), raw);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(ok("/%61dmin"), "/admin");
        assert_eq!(ok("/a%2Db"), "/a-b");
        assert_eq!(ok("/v1/x%3Ay"), "/v1/x:y");
    }

    #[test]
    fn other_bytes_are_encoded_upper_case() {
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/q%3fx"), "/q%3Fx");
        assert_eq!(ok("/p%25"), "/p%25");
    }

    #[test]
    fn empty_segments_collapse_and_one_trailing_slash_stays() {
        assert_eq!(ok("//admin"), "/admin");
        assert_eq!(ok("/a//b///"), "/a/b/");
        assert_eq!(ok("//"), "/");
    }

    #[test]
    fn dot_segments_are_refused_raw_and_encoded() {
        for raw in ["/a/../b", "/a/./b", "/..", "/.", "/a/%2e%2e/b", "/a/%2E/b", "/a/.%2e", "/a/%2e."] {
            assert_eq!(normalize(raw), Err(PathError::DotSegment), "{raw}");
        }
        assert_eq!(ok("/a/.../b"), "/a/.../b");
        assert_eq!(ok("/.well-known/x"), "/.well-known/x");
    }

    #[test]
    fn separators_and_nul_are_refused() {
        assert_eq!(normalize("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%5cb"), Err(PathError::Backslash));
        assert_eq!(normalize("/a\\b"), Err(PathError::Backslash));
        assert_eq!(normalize("/a%00"), Err(PathError::Nul));
        assert_eq!(normalize("/a\0"), Err(PathError::Nul));
    }

    #[test]
    fn double_encoding_and_overlong_utf8_are_refused() {
        assert_eq!(normalize("/%252e%252e/admin"), Err(PathError::DoubleEncoding));
        assert_eq!(normalize("/a%252fb"), Err(PathError::DoubleEncoding));
        assert_eq!(normalize("/%c0%ae%c0%ae/x"), Err(PathError::InvalidUtf8));
        assert_eq!(normalize("/%ff"), Err(PathError::InvalidUtf8));
    }

    #[test]
    fn malformed_and_odd_characters_are_refused() {
        assert_eq!(normalize("/a%2"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("/admin;jsessionid=1"), Err(PathError::Semicolon));
        assert_eq!(normalize("/admin%3bx"), Err(PathError::Semicolon));
        assert_eq!(normalize("/a#b"), Err(PathError::Fragment));
        assert_eq!(normalize("/a b"), Err(PathError::Control));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
        assert_eq!(normalize(""), Err(PathError::NotAbsolute));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(normalize(&long), Err(PathError::TooLong(MAX_PATH_BYTES)));
        // Short enough as sent, too long once re-encoded (`"` becomes %22).
        let grows = format!("/{}", "\"".repeat(MAX_PATH_BYTES / 2));
        assert_eq!(normalize(&grows), Err(PathError::TooLong(MAX_PATH_BYTES)));
    }

    #[test]
    fn unicode_lookalikes_of_separators_are_refused() {
        // Percent-encoded UTF-8 and raw: U+FF0E FULLWIDTH FULL STOP twice is
        // `..` to an upstream that applies NFKC.
        assert_eq!(normalize("/public/%EF%BC%8E%EF%BC%8E/admin/x"), Err(PathError::Lookalike));
        assert_eq!(normalize("/public/\u{FF0E}\u{FF0E}/admin/x"), Err(PathError::Lookalike));
        for c in [
            '\u{FF0E}', '\u{2024}', '\u{2025}', '\u{FE52}', '\u{FF0F}', '\u{FF3C}', '\u{FE68}', '\u{FF05}', '\u{FF1B}',
            '\u{FE54}', '\u{FF1F}', '\u{FF03}', '\u{0085}', '\u{2488}',
        ] {
            let mut encoded = String::from("/a/x");
            for byte in c.to_string().bytes() {
                encoded.push_str(&format!("%{byte:02X}"));
            }
            assert_eq!(normalize(&encoded), Err(PathError::Lookalike), "{c:?} encoded");
            assert_eq!(normalize(&format!("/a/x{c}y")), Err(PathError::Lookalike), "{c:?} raw");
        }
        // Other non-ASCII text is data.
        assert_eq!(ok("/caf%C3%A9/\u{65E5}\u{672C}"), "/caf%C3%A9/%E6%97%A5%E6%9C%AC");
        assert_eq!(ok("/a/%E2%88%95"), "/a/%E2%88%95"); // U+2215 DIVISION SLASH has no decomposition
    }

    /// The generated table equals the set derived from ICU4X's Unicode data
    /// (a newer Unicode than the generator may have had): regenerate with
    /// `policy/unicode/lookalikes.py` when this fails.
    #[test]
    fn lookalike_table_matches_unicode_normalisation() {
        use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
        assert!(LOOKALIKES.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        let (nfkc, nfc) = (ComposingNormalizerBorrowed::new_nfkc(), ComposingNormalizerBorrowed::new_nfc());
        let (nfkd, nfd) = (DecomposingNormalizerBorrowed::new_nfkd(), DecomposingNormalizerBorrowed::new_nfd());
        let bad = |text: &str| text.chars().any(|c| "./\\%;?#".contains(c) || c.is_ascii_control());
        let derived: Vec<char> = ('\u{80}'..=char::MAX)
            .filter(|&c| {
                let text = c.to_string();
                let forms = [nfkc.normalize(&text), nfkd.normalize(&text), nfc.normalize(&text), nfd.normalize(&text)];
                c.is_control() || forms.iter().any(|form| *form != text && bad(form))
            })
            .collect();
        assert_eq!(derived, LOOKALIKES);
    }

    #[test]
    fn segments_ignore_one_trailing_slash() {
        let seg = |p: &str| {
            let n = normalize(p).unwrap();
            n.segments().map(str::to_owned).collect::<Vec<_>>()
        };
        assert!(seg("/").is_empty());
        assert_eq!(seg("/admin"), ["admin"]);
        assert_eq!(seg("/admin/"), ["admin"]);
        assert_eq!(seg("/a/b/c"), ["a", "b", "c"]);
    }

    #[test]
    fn normalisation_is_idempotent() {
        for raw in ["/a%20b/", "//x//y", "/%61%62", "/caf%C3%A9/"] {
            let once = ok(raw);
            let twice = normalize(&once).unwrap();
            assert!(!twice.is_rewritten(), "{raw} -> {once}");
        }
    }
}
