//! Login-form fields: the values a `form:FIELD` rate limit is keyed by, read
//! from a form-urlencoded or JSON body.

/// Largest body read for a `form:FIELD` limit; it bounds the values found.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The distinct values of `field` in a form-urlencoded or JSON body.
///
/// A field may appear more than once (`username=decoy&username=victim`), and
/// frameworks disagree on which one they use: the request counts against
/// every value, so no number of decoys steers it away from the victim's
/// limit. The body is at most [`MAX_BODY_BYTES`], which bounds the count.
pub fn form_field_values(body: &[u8], content_type: Option<&str>, field: &str) -> Vec<String> {
    let Some(media_type) = content_type.and_then(|c| c.split(';').next()) else { return Vec::new() };
    let mut values: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |value: String| {
        if seen.insert(value.clone()) {
            values.push(value);
        }
    };
    match media_type.trim().to_ascii_lowercase().as_str() {
        "application/x-www-form-urlencoded" => {
            let Ok(text) = std::str::from_utf8(body) else { return Vec::new() };
            for pair in text.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if decode_form(key).as_deref() == Some(field) {
                    if let Some(value) = decode_form(value) {
                        add(value);
                    }
                }
            }
        }
        "application/json" => {
            for value in json_field_values(body, field) {
                add(value);
            }
        }
        _ => {}
    }
    values
}

/// Every value of a top-level key, duplicates included (a JSON parser that
/// keeps the last one would let `{"username":"victim","username":"decoy"}`
/// hide the victim).
fn json_field_values(body: &[u8], field: &str) -> Vec<String> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

    struct Values<'f>(&'f str);
    impl<'de> Visitor<'de> for Values<'_> {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut found = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if key != self.0 {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(text) => found.push(text),
                    serde_json::Value::Number(number) => found.push(number.to_string()),
                    _ => {}
                }
            }
            Ok(found)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    deserializer.deserialize_map(Values(field)).unwrap_or_default()
}

/// Percent-decode a form or query value (`+` is a space); `None` for a
/// malformed escape or a result that is not UTF-8.
pub fn decode_form(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = policy::hex_value(*bytes.get(i + 1)?)?;
                let low = policy::hex_value(*bytes.get(i + 2)?)?;
                out.push(high << 4 | low);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    fn values(body: &[u8], content_type: Option<&str>) -> Vec<String> {
        form_field_values(body, content_type, "username")
    }

    #[test]
    fn form_fields() {
        assert_eq!(values(b"username=alice&password=x", FORM), ["alice"]);
        assert_eq!(values(b"password=x&username=a%40b.c+d", FORM), ["a@b.c d"]);
        assert_eq!(values(b"user%6eame=bob", FORM), ["bob"]);
        assert!(values(b"password=x", FORM).is_empty());
        assert!(values(b"username=%zz", FORM).is_empty());
        assert!(values(b"username=%+61lice", FORM).is_empty(), "a sign is not a hex digit");
        assert!(values(b"username=alice", Some("text/plain")).is_empty());
        assert!(values(b"username=alice", None).is_empty());
    }

    #[test]
    fn every_value_of_a_repeated_field_counts() {
        assert_eq!(values(b"username=decoy&password=x&username=victim", FORM), ["decoy", "victim"]);
        assert_eq!(values(b"username=a&username=a", FORM), ["a"]);
        let many: String = (0..10).map(|n| format!("username=u{n}&")).collect::<String>() + "username=victim";
        let found = values(many.as_bytes(), FORM);
        assert_eq!(found.len(), 11);
        assert_eq!(found.last().map(String::as_str), Some("victim"));
        let json = Some("application/json");
        assert_eq!(values(br#"{"username":"victim","username":"decoy"}"#, json), ["victim", "decoy"]);
    }

    #[test]
    fn json_fields() {
        let json = Some("application/json; charset=utf-8");
        assert_eq!(values(br#"{"username":"alice","password":"x"}"#, json), ["alice"]);
        assert_eq!(values(br#"{"username":42}"#, json), ["42"]);
        assert!(values(br#"{"username":{"a":1}}"#, json).is_empty());
        assert!(values(b"not json", json).is_empty());
        assert!(values(b"[1,2]", json).is_empty());
    }
}
