//! Reading claims out of a verified payload: scopes and identity-header values.

use config::ClaimPath;
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
