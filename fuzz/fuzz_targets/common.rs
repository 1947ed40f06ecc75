//! Helpers shared by several targets (included with `#[path]`, so each
//! target stays one binary with no extra library crate).
#![allow(dead_code)]

/// Value of one hex digit, either case.
pub fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Strict RFC 3986 percent-decoding: `%` must be followed by exactly two hex
/// digits. `None` on a malformed escape.
pub fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let high = hex_value(*text.get(i + 1)?)?;
            let low = hex_value(*text.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Bytes a canonical path carries literally (policy's `is_canonical_literal`,
/// restated here from the documented canonical form so the two can disagree).
pub fn is_literal(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&byte)
}

/// Whether the invariant `name` is checked. Every invariant is, unless its
/// name is listed in the comma-separated `FUZZ_ALLOW` environment variable:
/// a way to keep fuzzing past a known, reported finding while its fix is
/// pending (the names are listed in README.md). Read once per process.
pub fn enforced(name: &str) -> bool {
    use std::sync::OnceLock;
    static ALLOWED: OnceLock<Vec<String>> = OnceLock::new();
    let allowed = ALLOWED.get_or_init(|| {
        std::env::var("FUZZ_ALLOW")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    !allowed.iter().any(|a| a == name)
}

/// A long input shortened for an assertion message.
pub fn short(text: &str) -> String {
    if text.len() <= 160 {
        return format!("{text:?}");
    }
    let mut end = 120;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}
