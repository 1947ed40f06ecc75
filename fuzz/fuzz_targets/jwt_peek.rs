//! The unverified JWS peek that picks the issuer and the key.
//!
//! Input: a token (UTF-8; anything else is not a header value we would read).
//!
//! Invariants:
//! - `split` succeeds exactly when the token has three '.'-separated parts
//!   with non-empty header and payload, and returns exactly those parts;
//! - `peek` fails with `NotJws` exactly when `split` does;
//! - when `peek` succeeds, header and payload are base64url without padding
//!   and decode to JSON objects (the first non-blank byte is '{');
//!   `alg` is the header object's "alg" string, `kid` and `typ` are its
//!   strings when present, `crit` is set exactly when the header has a
//!   non-null "crit", and the issuer is the payload's "iss" when a string;
//! - `peek` is deterministic and never panics, whatever the JSON;
//!   `signing_input` and `signature` are the token's own parts and
//!   `payload` is the decoded payload;
//! - `jws::check_claims` over the payload never panics, and accepts only
//!   claims with a numeric `exp`, the expected `iss` and an accepted `aud`.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use credentials::jws::{check_claims, ClaimRules};
use credentials::peek::{peek, split, PeekError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn manual_split(token: &str) -> Option<[&str; 3]> {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [h, p, s] if !h.is_empty() && !p.is_empty() => Some([h, p, s]),
        _ => None,
    }
}

/// The part as a JSON object. `None` when serde_json will not build a
/// `Value` from it although peek read it: members peek skips are not fully
/// validated (a lone surrogate escape), and may nest deeper than `Value`'s
/// recursion limit. Both are harmless: the verifier parses the token again.
fn json_object(part: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("peek accepted a part that is not base64url");
    assert_eq!(bytes.trim_ascii_start().first(), Some(&b'{'), "peek accepted a part that is not an object");
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Some(map),
        Ok(other) => panic!("peek accepted a part that is not a JSON object: {other}"),
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let parts = split(token);
    assert_eq!(parts.ok(), manual_split(token), "{token:?}: split disagrees with a manual split");
    let result = peek(token);
    assert_eq!(result, peek(token), "peek is not deterministic");
    assert_eq!(matches!(result, Err(PeekError::NotJws)), parts.is_err(), "{token:?}: NotJws iff split fails");
    let Ok(peeked) = result else { return };
    let [header, payload, signature] = parts.unwrap();
    assert_eq!(peeked.signing_input, &token[..header.len() + 1 + payload.len()]);
    assert_eq!(peeked.signature, signature);
    assert_eq!(Some(&peeked.payload), URL_SAFE_NO_PAD.decode(payload).ok().as_ref());
    if let Ok(claims) = serde_json::from_slice::<serde_json::Map<String, Value>>(&peeked.payload) {
        let audiences = ["api".to_string()];
        let rules =
            ClaimRules { issuer: "https://idp", audiences: Some(&audiences), require_subject: false, leeway: 60 };
        if let Ok(exp) = check_claims(&claims, &rules, 1_800_000_000) {
            assert!(exp >= 1_800_000_000 - 60, "an expired token was accepted");
            assert_eq!(claims.get("iss"), Some(&Value::String("https://idp".into())));
            let aud = claims.get("aud").expect("aud is required");
            let accepted = |v: &Value| v == &Value::String("api".into());
            assert!(accepted(aud) || aud.as_array().is_some_and(|a| a.iter().any(accepted)), "{aud}");
        }
    }

    let Some(header) = json_object(header) else { return };
    assert_eq!(header.get("alg"), Some(&Value::String(peeked.header.alg.clone())), "alg not from the header");
    let optional = |name: &str| match header.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => panic!("header {name} accepted as non-string {other:?}"),
    };
    assert_eq!(peeked.header.kid, optional("kid"));
    assert_eq!(peeked.header.typ, optional("typ"));
    let crit = header.get("crit").filter(|c| !c.is_null());
    assert_eq!(peeked.header.crit.as_ref(), crit, "crit must be seen");

    let Some(payload) = json_object(payload) else { return };
    let iss = match payload.get("iss") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    assert_eq!(peeked.issuer, iss, "issuer not from the payload");
});
