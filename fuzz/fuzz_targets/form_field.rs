//! The login-body reader behind `form:FIELD` rate-limit keys.
//!
//! Input: `CONTENT-TYPE '\n' BODY` (no newline: no Content-Type). The field
//! looked up is "username".
//!
//! Invariants (`form_field_values`):
//! - only application/x-www-form-urlencoded and application/json bodies
//!   (parameters and case aside) yield values, no two equal;
//! - form bodies: the values are exactly the distinct values a strict decoder
//!   (RFC 3986 `%XX` with two hex digits, '+' as space) reads for the pairs
//!   named "username", in order: whatever decoys an attacker adds, the one
//!   the upstream uses (frameworks take the first, or the last) is counted;
//! - JSON bodies: for a valid top-level object, the value serde_json keeps
//!   for "username" (the last of repeated keys), when a string or number, is
//!   counted; without the key, nothing is.
#![no_main]

use credentials::form::form_field_values;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;
use common::hex_value;

const FIELD: &str = "username";

/// '+' is a space, `%XX` a byte; `None` on a malformed escape or bad UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = hex_value(*bytes.get(i + 1)?)?;
                let low = hex_value(*bytes.get(i + 2)?)?;
                out.push(high << 4 | low);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Every decodable value of the field, in order, repeats included.
fn reference_form(body: &str) -> Vec<String> {
    body.split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key).as_deref() == Some(FIELD)).then(|| form_decode(value)).flatten()
        })
        .collect()
}

fn distinct(all: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in all {
        if !out.contains(value) {
            out.push(value.clone());
        }
    }
    out
}

fn json_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => match std::str::from_utf8(&data[..i]) {
            Ok(ct) => (Some(ct), &data[i + 1..]),
            Err(_) => return,
        },
        None => (None, data),
    };
    let values = form_field_values(body, content_type, FIELD);
    for (i, value) in values.iter().enumerate() {
        assert!(!values[..i].contains(value), "{value:?} counted twice");
    }
    let media = content_type.and_then(|ct| ct.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let Ok(text) = std::str::from_utf8(body) else {
                assert!(values.is_empty());
                return;
            };
            // regressions/form_field/duplicate-username, four-decoys-then-victim,
            // plus-sign-in-escape.
            let expected = distinct(&reference_form(text));
            assert_eq!(values, expected, "{}: differs from a strict decoder", common::short(text));
        }
        Some("application/json") => {
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
                if let Some(last) = map.get(FIELD).and_then(json_value) {
                    assert!(values.contains(&last), "{}: {last:?} not counted ({values:?})", short(body));
                }
                if map.get(FIELD).is_none() {
                    assert!(values.is_empty(), "{}: values without the field", short(body));
                }
            }
        }
        _ => assert!(values.is_empty(), "values read from a {content_type:?} body"),
    }
});

fn short(body: &[u8]) -> String {
    common::short(&String::from_utf8_lossy(body))
}
