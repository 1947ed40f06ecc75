//! The `Cache-Control` header of an IdP response (RFC 9111 section 5.2):
//! how long the IdP says a document (a JWKS) stays fresh.
//!
//! Only `max-age` is read. The caller bounds what it does with the answer:
//! the key refresh lets `max-age` shorten its interval, never lengthen it,
//! and never below the issuer's minimum refresh interval.

use std::time::Duration;

use http::HeaderValue;

/// The `max-age` of one `Cache-Control` header value, if it has one.
///
/// Directives are separated by `,`; names are case-insensitive, whitespace
/// around names, `=` and values is ignored, and the value may be quoted. The
/// first `max-age` whose value is a decimal number of seconds that fits a
/// `u64` counts. A value that is not visible ASCII (obs-text) has none.
pub fn max_age(value: &HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        seconds.trim().trim_matches('"').parse::<u64>().ok().map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(value: &str) -> Option<u64> {
        max_age(&HeaderValue::from_str(value).unwrap()).map(|d| d.as_secs())
    }

    #[test]
    fn reads_max_age() {
        assert_eq!(of("public, max-age=3600, must-revalidate"), Some(3600));
        assert_eq!(of("max-age=0"), Some(0));
        assert_eq!(of("MAX-AGE = \"60\""), Some(60));
        assert_eq!(of("\tmax-age=18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn no_max_age() {
        assert_eq!(of("no-store"), None);
        assert_eq!(of(""), None);
        assert_eq!(of("s-maxage=60"), None);
        assert_eq!(of("max-age"), None);
        assert_eq!(of("max-age=-1"), None);
        assert_eq!(of("max-age=1.5"), None);
        assert_eq!(of("max-age=18446744073709551616"), None);
    }

    #[test]
    fn the_first_usable_max_age_counts() {
        assert_eq!(of("max-age=10, max-age=20"), Some(10));
        assert_eq!(of("max-age=soon, max-age=20"), Some(20));
    }

    #[test]
    fn obs_text_has_no_max_age() {
        let value = HeaderValue::from_bytes(b"max-age=60, x=\xe9").unwrap();
        assert_eq!(max_age(&value), None);
    }
}
