//! Reading claims out of a verified payload: scopes and identity-header values.

use config::{ClaimPath, RequiredClaim, RequiredValue};
use http::HeaderValue;
use policy::{is_scope_token, ScopeSet};
use serde_json::{Map, Value};

/// The value at a (possibly nested) claim path.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &ClaimPath) -> Option<&'a Value> {
    let (first, rest) = path.0.split_first()?;
    let mut value = claims.get(first)?;
    for part in rest {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The union of scopes found in `paths`: a space-separated string (OAuth
/// `scope`) or an array of strings (`scp`, `roles`, `realm_access.roles`).
pub fn scopes(claims: &Map<String, Value>, paths: &[ClaimPath]) -> ScopeSet {
    let mut found: Vec<&str> = Vec::new();
    for path in paths {
        match lookup(claims, path) {
            Some(Value::String(text)) => found.extend(text.split_ascii_whitespace()),
            Some(Value::Array(items)) => found.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    // Only RFC 6749 scope tokens: an array item "read admin" is not two
    // scopes, and would make the space-joined scope header ambiguous.
    found.retain(|scope| is_scope_token(scope));
    ScopeSet::new(found)
}

/// What the audience claims of a token say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// One of the claims holds an accepted audience.
    Accepted,
    /// The claims are there, none holds an accepted audience.
    Other,
    /// None of the claims is there as a string or an array of strings.
    Missing,
}

/// Judge the audience read from `paths` (each a string, or an array whose
/// string items count) against `accepted`. A claim of any other type counts
/// as absent, so a token cannot pass by putting an object where a string goes.
pub fn audience(claims: &Map<String, Value>, paths: &[ClaimPath], accepted: &[String]) -> Audience {
    let mut found = false;
    for path in paths {
        let is_accepted = |value: &Value| value.as_str().is_some_and(|text| accepted.iter().any(|a| a == text));
        let matched = match lookup(claims, path) {
            Some(value @ Value::String(_)) => is_accepted(value),
            Some(Value::Array(items)) => items.iter().any(is_accepted),
            _ => continue,
        };
        if matched {
            return Audience::Accepted;
        }
        found = true;
    }
    if found {
        Audience::Other
    } else {
        Audience::Missing
    }
}

/// Whether every required claim is there with one of its values: a JSON
/// string or boolean equal to it (an array or object never matches).
pub fn has_required(claims: &Map<String, Value>, required: &[RequiredClaim]) -> bool {
    required.iter().all(|rule| {
        lookup(claims, &rule.claim).is_some_and(|value| {
            rule.values.iter().any(|wanted| match (wanted, value) {
                (RequiredValue::String(wanted), Value::String(text)) => wanted == text,
                (RequiredValue::Bool(wanted), Value::Bool(flag)) => wanted == flag,
                _ => false,
            })
        })
    })
}

/// A claim as an identity-header value, or `None` when it cannot be one
/// safely: only visible ASCII and spaces are forwarded, so a claim carrying
/// CR/LF, control bytes or non-ASCII text never reaches the upstream.
pub fn header_value(value: &Value) -> Option<HeaderValue> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            strings?.join(" ")
        }
        Value::Null | Value::Object(_) => return None,
    };
    safe_header_value(&text)
}

/// Visible ASCII and inner spaces only.
pub fn safe_header_value(text: &str) -> Option<HeaderValue> {
    let safe = !text.is_empty()
        && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !text.starts_with(' ')
        && !text.ends_with(' ');
    if !safe {
        return None;
    }
    HeaderValue::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> ClaimPath {
        ClaimPath(text.split('.').map(str::to_owned).collect())
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn nested_lookup() {
        let c = claims(json!({"realm_access": {"roles": ["admin"]}, "sub": "u1"}));
        assert_eq!(lookup(&c, &path("realm_access.roles")), Some(&json!(["admin"])));
        assert_eq!(lookup(&c, &path("sub")), Some(&json!("u1")));
        assert_eq!(lookup(&c, &path("sub.x")), None);
        assert_eq!(lookup(&c, &path("missing")), None);
    }

    #[test]
    fn scopes_from_strings_and_arrays() {
        let c = claims(json!({
            "scope": "openid  tasks:read\ttasks:write",
            "scp": ["a", 1, "b", "c d", "quote\"d", ""],
            "realm_access": {"roles": ["admin"]},
            "permissions": "not-configured",
        }));
        let set = scopes(&c, &[path("scope"), path("scp"), path("realm_access.roles"), path("nope")]);
        assert_eq!(set.iter().collect::<Vec<_>>(), ["a", "admin", "b", "openid", "tasks:read", "tasks:write"]);
    }

    #[test]
    fn audience_from_strings_and_arrays_of_any_listed_claim() {
        let accepted = ["api".to_owned(), "client-1".to_owned()];
        let judge = |value: Value, paths: &[&str]| {
            audience(&claims(value), &paths.iter().map(|p| path(p)).collect::<Vec<_>>(), &accepted)
        };
        assert_eq!(judge(json!({"aud": "api"}), &["aud"]), Audience::Accepted);
        assert_eq!(judge(json!({"aud": ["x", "api"]}), &["aud"]), Audience::Accepted);
        assert_eq!(judge(json!({"client_id": "client-1"}), &["client_id"]), Audience::Accepted);
        assert_eq!(judge(json!({"aud": "x", "cid": "client-1"}), &["aud", "cid"]), Audience::Accepted);
        assert_eq!(judge(json!({"a": {"b": ["api"]}}), &["a.b"]), Audience::Accepted);
        assert_eq!(judge(json!({"client_id": "client-2"}), &["client_id"]), Audience::Other);
        assert_eq!(judge(json!({"aud": [], "cid": "other"}), &["aud", "cid"]), Audience::Other);
        assert_eq!(judge(json!({"aud": "api"}), &["client_id"]), Audience::Missing);
        // Other types are not an audience: not a match, and not "present".
        for value in [json!({"client_id": {"api": 1}}), json!({"client_id": 1}), json!({"client_id": null})] {
            assert_eq!(judge(value, &["client_id"]), Audience::Missing);
        }
        assert_eq!(judge(json!({"client_id": [1, {"x": "api"}]}), &["client_id"]), Audience::Other);
    }

    #[test]
    fn required_claims_match_exact_strings_and_booleans() {
        let rule = |claim: &str, values: Vec<RequiredValue>| RequiredClaim { claim: path(claim), values };
        let string = |text: &str| RequiredValue::String(text.to_owned());
        let rules = [
            rule("token_use", vec![string("access")]),
            rule("azp", vec![string("web"), string("cli")]),
            rule("email_verified", vec![RequiredValue::Bool(true)]),
        ];
        let ok = json!({"token_use": "access", "azp": "cli", "email_verified": true});
        assert!(has_required(&claims(ok.clone()), &rules));
        assert!(has_required(&claims(json!({})), &[]));
        for (claim, value) in [
            ("token_use", json!("id")),
            ("token_use", json!("Access")),
            ("token_use", json!(["access"])),
            ("azp", json!("other")),
            ("email_verified", json!("true")),
            ("email_verified", json!(false)),
            ("email_verified", Value::Null),
        ] {
            let mut bad = ok.clone();
            bad[claim] = value.clone();
            assert!(!has_required(&claims(bad), &rules), "{claim}: {value}");
            let mut missing = claims(ok.clone());
            missing.remove(claim);
            assert!(!has_required(&missing, &rules), "without {claim}");
        }
    }

    #[test]
    fn header_values_are_safe_or_dropped() {
        assert_eq!(header_value(&json!("alice")).unwrap(), "alice");
        assert_eq!(header_value(&json!(42)).unwrap(), "42");
        assert_eq!(header_value(&json!(true)).unwrap(), "true");
        assert_eq!(header_value(&json!(["g1", "g2"])).unwrap(), "g1 g2");
        assert!(header_value(&json!("a\r\nX-Injected: 1")).is_none());
        assert!(header_value(&json!("a\nb")).is_none());
        assert!(header_value(&json!("caf\u{e9}")).is_none());
        assert!(header_value(&json!("a\u{0}b")).is_none());
        assert!(header_value(&json!(" padded")).is_none());
        assert!(header_value(&json!("")).is_none());
        assert!(header_value(&json!({"a": 1})).is_none());
        assert!(header_value(&json!(["a", 1])).is_none());
        assert!(header_value(&Value::Null).is_none());
    }
}
