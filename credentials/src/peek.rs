//! Reading a JWS's header and `iss` *without* trusting them.
//!
//! The only use of this is choosing which issuer's rules and keys verify the
//! token; everything read here is checked again by the verifier. It is an
//! attacker's first parser, so it is strict and bounded: compact
//! serialisation only, base64url without padding, JSON objects only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// The JOSE header fields portcullis looks at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    /// Extensions the token says must be understood (RFC 7515 4.1.11).
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// What a token claims about itself before verification, and its parts
/// as the verifier needs them: the payload is decoded here once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked<'t> {
    pub header: JoseHeader,
    /// `iss`, if present and a string.
    pub issuer: Option<String>,
    /// The payload's JSON, decoded from base64url (an object).
    pub payload: Vec<u8>,
    /// `header.payload` as sent: what the signature signs.
    pub signing_input: &'t str,
    /// The signature part, still base64url.
    pub signature: &'t str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeekError {
    /// Not three dot-separated parts: maybe an opaque token.
    #[error("not a JWS in compact serialisation")]
    NotJws,
    #[error("a token part is not base64url")]
    BadEncoding,
    #[error("the token header is not a JSON object with an 'alg'")]
    BadHeader,
    #[error("the token payload is not a JSON object")]
    BadPayload,
}

#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: Option<serde_json::Value>,
}

/// Split a compact JWS into its three parts.
pub fn split(token: &str) -> Result<[&str; 3], PeekError> {
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PeekError::NotJws);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(PeekError::NotJws);
    }
    Ok([header, payload, signature])
}

pub fn peek(token: &str) -> Result<Peeked<'_>, PeekError> {
    let [header, payload, signature] = split(token)?;
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header = decode_part(header)?;
    if !is_json_object(&header) {
        return Err(PeekError::BadHeader);
    }
    let header: JoseHeader = serde_json::from_slice(&header).map_err(|_| PeekError::BadHeader)?;
    let payload = decode_part(payload)?;
    if !is_json_object(&payload) {
        return Err(PeekError::BadPayload);
    }
    let only_issuer: IssuerOnly = serde_json::from_slice(&payload).map_err(|_| PeekError::BadPayload)?;
    let issuer = match only_issuer.iss {
        Some(serde_json::Value::String(iss)) => Some(iss),
        _ => None,
    };
    Ok(Peeked { header, issuer, payload, signing_input, signature })
}

/// serde would happily read a struct from a JSON array (fields in order);
/// JOSE parts, JWKS and discovery documents are objects, so check first.
pub fn is_json_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

fn decode_part(part: &str) -> Result<Vec<u8>, PeekError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| PeekError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.sig", b64(header), b64(payload))
    }

    #[test]
    fn reads_header_and_issuer() {
        let full = token(r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#, r#"{"iss":"https://a","x":1}"#);
        let peeked = peek(&full).unwrap();
        assert_eq!(peeked.header.alg, "RS256");
        assert_eq!(peeked.header.kid.as_deref(), Some("k1"));
        assert_eq!(peeked.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(peeked.issuer.as_deref(), Some("https://a"));
        assert_eq!(peeked.payload, br#"{"iss":"https://a","x":1}"#);
        let minimal = token(r#"{"alg":"RS256"}"#, "{}");
        let peeked = peek(&minimal).unwrap();
        assert_eq!(format!("{}.{}", peeked.signing_input, peeked.signature), minimal);
        assert_eq!(peeked.signature, "sig");
    }

    #[test]
    fn a_non_string_issuer_is_no_issuer() {
        let array = token(r#"{"alg":"RS256"}"#, r#"{"iss":["a","b"]}"#);
        let peeked = peek(&array).unwrap();
        assert_eq!(peeked.issuer, None);
    }

    #[test]
    fn refuses_malformed_tokens() {
        assert_eq!(peek("opaque-token"), Err(PeekError::NotJws));
        assert_eq!(peek("a.b"), Err(PeekError::NotJws));
        assert_eq!(peek("a.b.c.d"), Err(PeekError::NotJws));
        assert_eq!(peek("a.b.c.d.e"), Err(PeekError::NotJws));
        assert_eq!(peek(".b.c"), Err(PeekError::NotJws));
        assert_eq!(peek("!!!.b.c"), Err(PeekError::BadEncoding));
        assert_eq!(peek(&format!("{}=.{}.s", b64("{}"), b64("{}"))), Err(PeekError::BadEncoding));
        assert_eq!(peek(&token(r#"{"typ":"JWT"}"#, "{}")), Err(PeekError::BadHeader));
        assert_eq!(peek(&token(r#"["alg"]"#, "{}")), Err(PeekError::BadHeader));
        assert_eq!(peek(&token(r#"{"alg":"RS256"}"#, "[]")), Err(PeekError::BadPayload));
        assert_eq!(peek(&token(r#"{"alg":"RS256"}"#, "not json")), Err(PeekError::BadPayload));
    }
}
