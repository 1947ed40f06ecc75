//! The `max-age` of an IdP response's `Cache-Control` header.
//!
//! Input: one header value (inputs that `http` would not accept as a header
//! value, such as control characters, are skipped).
//!
//! Invariants:
//! - never a panic;
//! - a value with a byte outside visible ASCII and tab has no max-age;
//! - an answer needs a `max-age` (any case) in the value, and its number of
//!   seconds, in decimal, appears there;
//! - directive names are case-insensitive: the upper- and lower-cased value
//!   give the same answer;
//! - spaces and tabs around the `,` separators change nothing;
//! - the first usable `max-age` counts: `max-age=7, ` in front gives 7, and
//!   `, max-age=7` behind changes only a value that had none.
#![no_main]

use std::time::Duration;

use credentials::cache_control::max_age;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fn of(text: &str) -> Option<Duration> {
    // Only visible ASCII (and tab) is added to a value that `http` accepted.
    HeaderValue::from_str(text).ok().and_then(|value| max_age(&value))
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let found = max_age(&value);
    let Ok(text) = std::str::from_utf8(data) else {
        assert_eq!(found, None, "max-age from a value that is not UTF-8");
        return;
    };
    if !text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        assert_eq!(found, None, "max-age from a value with obs-text");
        return;
    }
    let lower = text.to_ascii_lowercase();
    if let Some(age) = found {
        assert!(lower.contains("max-age"), "max-age {age:?} without a max-age directive");
        assert!(text.contains(&age.as_secs().to_string()), "max-age {age:?} not in the value");
    }
    assert_eq!(of(&lower), found, "lower case changes the answer");
    assert_eq!(of(&text.to_ascii_uppercase()), found, "upper case changes the answer");
    assert_eq!(of(&text.replace(',', " \t, \t")), found, "whitespace around ',' changes the answer");

    let seven = Some(Duration::from_secs(7));
    assert_eq!(of(&format!("max-age=7, {text}")), seven, "a max-age in front does not count");
    assert_eq!(of(&format!("{text}, max-age=7")), found.or(seven), "a max-age behind counts wrongly");
});
