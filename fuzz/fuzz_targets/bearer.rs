//! The `Authorization` header parser (RFC 6750 section 2.1).
//!
//! Input: the request's `Authorization` values, separated by '\n' (a header
//! value cannot contain a newline); empty input is no header at all.
//!
//! Invariants:
//! - no header is no token; two or more are `DuplicateHeader`, always;
//! - a token returned is non-empty, at most `max_bytes`, made of b64token
//!   characters with '=' only at the end, lies inside the header value, and
//!   the value's scheme is "Bearer" in some case followed by blanks;
//! - a value whose scheme is not Bearer (and that is valid UTF-8) is "no token";
//! - `Empty` means nothing but blanks follows the scheme; `TooLarge` means the
//!   token is longer than the limit;
//! - the result does not depend on the limit except through `TooLarge`, and
//!   a token accepted from a header is accepted from the query string and
//!   from a freshly built `Bearer <token>` header.
#![no_main]

use credentials::bearer::{from_headers, from_query, BearerError};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 8192;
const SMALL: usize = 16;

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// `Some(rest after the scheme)` when the value's scheme is Bearer.
fn bearer_rest(value: &[u8]) -> Option<&[u8]> {
    let start = value.iter().position(|&b| !is_blank(b)).unwrap_or(value.len());
    let value = &value[start..];
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let rest = &value[6..];
    (rest.is_empty() || is_blank(rest[0])).then_some(rest)
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = if data.is_empty() { Vec::new() } else { data.split(|&b| b == b'\n').collect() };
    let result = from_headers(values.iter().copied(), MAX);
    let small = from_headers(values.iter().copied(), SMALL);

    match values.len() {
        0 => {
            assert_eq!(result, Ok(None));
            return;
        }
        1 => {}
        _ => {
            assert_eq!(result, Err(BearerError::DuplicateHeader));
            assert_eq!(small, Err(BearerError::DuplicateHeader));
            return;
        }
    }
    let value = values[0];
    let utf8 = std::str::from_utf8(value).is_ok();

    // What follows the Bearer scheme, blanks trimmed: the token candidate.
    let candidate = bearer_rest(value).map(|rest| {
        let start = rest.iter().position(|&b| !is_blank(b)).unwrap_or(rest.len());
        let end = rest.iter().rposition(|&b| !is_blank(b)).map_or(start, |i| i + 1);
        &rest[start..end]
    });
    if utf8 && candidate.is_some_and(|c| c.len() > SMALL) {
        assert_eq!(small, Err(BearerError::TooLarge), "{value:?}: limit {SMALL} not enforced");
    } else {
        assert_eq!(small, result, "{value:?}: the limit changed more than TooLarge");
    }

    match result {
        Ok(None) => {
            assert!(utf8, "invalid UTF-8 must not pass as 'no token'");
            assert!(bearer_rest(value).is_none(), "{value:?}: Bearer scheme read as no token");
        }
        Ok(Some(token)) => {
            let t = token.as_bytes();
            assert!(!t.is_empty() && t.len() <= MAX);
            let body_len = t.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
            assert!(body_len > 0, "{token:?}: only '='");
            assert!(t[..body_len].iter().all(|&b| is_b64token_char(b)), "{token:?}: not a b64token");
            // The token is a slice of the header value.
            let (vs, ts) = (value.as_ptr() as usize, t.as_ptr() as usize);
            assert!(ts >= vs && ts + t.len() <= vs + value.len(), "token not inside the header value");
            let candidate = candidate.expect("a token from a non-Bearer value");
            assert_eq!(candidate, t, "{value:?}: token is not everything after the scheme");
            assert_eq!(from_query(token, MAX), Ok(token));
            let rebuilt = format!("Bearer {token}");
            assert_eq!(from_headers([rebuilt.as_bytes()], MAX), Ok(Some(token)));
        }
        Err(BearerError::Empty) => {
            assert_eq!(candidate, Some(&b""[..]), "{value:?}: Empty but a token follows the scheme");
        }
        Err(BearerError::TooLarge) => {
            let candidate = candidate.expect("TooLarge for a non-Bearer value");
            assert!(candidate.len() > MAX);
        }
        Err(BearerError::Malformed) => {
            assert!(!utf8 || bearer_rest(value).is_some(), "{value:?}: Malformed for a non-Bearer value");
        }
        Err(e @ (BearerError::DuplicateHeader | BearerError::SeveralMethods)) => panic!("{e:?} from one value"),
    }
});
