//! OpenID Connect discovery documents, as fetched from an issuer's
//! `.well-known/openid-configuration`.
//!
//! Input: the document's bytes. Parsed for a fixed configured issuer and,
//! when the document's `issuer` is a JSON string, for that issuer and for it
//! with a trailing `/`.
//!
//! Invariants:
//! - never a panic;
//! - `NotObject` exactly when the document does not start (after
//!   whitespace) with `{`;
//! - accepted only for the configured issuer, exactly (a trailing `/` is
//!   another issuer), and only with `http(s)://` endpoints: the document's
//!   `jwks_uri` and the optional endpoints (`introspection_endpoint`,
//!   `authorization_endpoint`, `token_endpoint`, `end_session_endpoint`;
//!   absent or null: none), unchanged;
//! - for a JSON object that serde_json reads: the outcome is the one its
//!   members call for (missing or mistyped members: `Malformed`; another
//!   issuer: `WrongIssuer` naming both; a non-http(s) endpoint:
//!   `NotHttpUrl` naming it, `jwks_uri` first), and `Malformed` otherwise
//!   only for a member given twice. The same members without duplicates,
//!   re-serialised, give exactly that outcome.
#![no_main]

use credentials::discovery::{self, Discovered, DiscoveryError};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

const ISSUER: &str = "https://sso.example.com/realms/app";

/// The optional endpoints, in the order the product checks them.
const OPTIONAL_ENDPOINTS: [&str; 4] =
    ["introspection_endpoint", "authorization_endpoint", "token_endpoint", "end_session_endpoint"];

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// What the members of a JSON object call for, for `expected`.
fn outcome(map: &Map<String, Value>, expected: &str) -> Result<Discovered, DiscoveryError> {
    let malformed = || DiscoveryError::Malformed(String::new());
    let issuer = map.get("issuer").and_then(Value::as_str).ok_or_else(malformed)?;
    let jwks_uri = map.get("jwks_uri").and_then(Value::as_str).ok_or_else(malformed)?;
    let mut optional = Vec::new();
    for name in OPTIONAL_ENDPOINTS {
        optional.push(match map.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => Some(url.clone()),
            Some(_) => return Err(malformed()),
        });
    }
    if issuer != expected {
        return Err(DiscoveryError::WrongIssuer { found: issuer.to_owned(), expected: expected.to_owned() });
    }
    for url in std::iter::once(jwks_uri).chain(optional.iter().flatten().map(String::as_str)) {
        if !is_http_url(url) {
            return Err(DiscoveryError::NotHttpUrl(url.to_owned()));
        }
    }
    let [introspection_endpoint, authorization_endpoint, token_endpoint, end_session_endpoint] =
        <[Option<String>; 4]>::try_from(optional).unwrap_or_default();
    Ok(Discovered {
        jwks_uri: jwks_uri.to_owned(),
        introspection_endpoint,
        authorization_endpoint,
        token_endpoint,
        end_session_endpoint,
    })
}

/// Whether the document is a JSON object that names one member twice.
/// serde_json's `Value` keeps the last of them and so hides the first: a
/// mistyped first `issuer` followed by a string one makes the product say
/// `Malformed` (it reads members in order) where `Value` shows a string.
fn has_duplicate_member(document: &[u8]) -> bool {
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<bool, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut duplicate = false;
            while let Some(name) = members.next_key::<String>()? {
                members.next_value::<IgnoredAny>()?;
                duplicate |= !seen.insert(name);
            }
            Ok(duplicate)
        }
    }
    let mut reader = serde_json::Deserializer::from_slice(document);
    reader.deserialize_map(Names).unwrap_or(false)
}

/// The same outcome, ignoring serde_json's message for `Malformed`.
fn same(got: &Result<Discovered, DiscoveryError>, want: &Result<Discovered, DiscoveryError>) -> bool {
    match (got, want) {
        (Err(DiscoveryError::Malformed(_)), Err(DiscoveryError::Malformed(_))) => true,
        _ => got == want,
    }
}

fn check(document: &[u8], parsed: Option<&Value>, expected: &str) -> Result<Discovered, DiscoveryError> {
    let result = discovery::parse(document, expected);
    let object = document.trim_ascii_start().first() == Some(&b'{');
    assert_eq!(matches!(result, Err(DiscoveryError::NotObject)), !object, "NotObject without reason: {result:?}");
    match &result {
        Ok(found) => {
            assert!(is_http_url(&found.jwks_uri), "accepted jwks_uri {:?}", found.jwks_uri);
            let optional = [
                &found.introspection_endpoint,
                &found.authorization_endpoint,
                &found.token_endpoint,
                &found.end_session_endpoint,
            ];
            for url in optional.into_iter().flatten() {
                assert!(is_http_url(url), "accepted endpoint {url:?}");
            }
        }
        Err(DiscoveryError::WrongIssuer { found, expected: named }) => {
            assert_eq!(named, expected, "WrongIssuer names another configured issuer");
            assert_ne!(found, expected, "WrongIssuer for the configured issuer");
        }
        Err(DiscoveryError::NotHttpUrl(url)) => assert!(!is_http_url(url), "NotHttpUrl for {url:?}"),
        Err(DiscoveryError::NotObject | DiscoveryError::Malformed(_)) => {}
    }
    // `None`: serde_json builds no `Value` although the product may read the
    // document (invalid UTF-8 in a member it skips, nesting past `Value`'s
    // recursion limit); the members are then not compared.
    match parsed {
        Some(Value::Object(map)) => {
            let want = outcome(map, expected);
            if let Err(DiscoveryError::Malformed(message)) = &result {
                // The product refuses duplicate members (serde says
                // "duplicate field", or stops earlier at a mistyped first
                // one); `Value` keeps only the last.
                assert!(
                    same(&result, &want) || has_duplicate_member(document),
                    "Malformed ({message}) although the members call for {want:?}"
                );
            } else {
                assert!(same(&result, &want), "{result:?}, but the members call for {want:?}");
            }
            let canonical = serde_json::to_vec(map).unwrap_or_default();
            let again = discovery::parse(&canonical, expected);
            assert!(same(&again, &want), "re-serialised: {again:?}, but the members call for {want:?}");
        }
        Some(_) => assert_eq!(result, Err(DiscoveryError::NotObject), "accepted a JSON value that is not an object"),
        None => {}
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let parsed = serde_json::from_slice::<Value>(data).ok();
    let fixed = check(data, parsed.as_ref(), ISSUER);
    let Some(own) = parsed.as_ref().and_then(|v| v.get("issuer")).and_then(Value::as_str) else { return };
    let own_result = check(data, parsed.as_ref(), own);
    let slashed = format!("{own}/");
    let slashed_result = check(data, parsed.as_ref(), &slashed);
    assert!(slashed_result.is_err(), "accepted for {slashed:?}, issuer {own:?}");
    if own == ISSUER {
        assert_eq!(fixed, own_result);
    } else {
        assert!(fixed.is_err(), "accepted for {ISSUER:?}, issuer {own:?}");
    }
});
