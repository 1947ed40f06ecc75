//! What a verified credential stands for, computed once per credential and
//! shared by every request that presents it.

use config::{ApiKey, ClaimPath, HeaderValueSource, IdentityHeader};
use credentials::claims;
use http::HeaderValue;
use policy::{ClaimValue, ClaimValues, IssuerId, ScopeSet};
use serde_json::{Map, Value};

use super::issuer::IssuerState;

/// A verified identity: what the policy and the identity headers need.
#[derive(Debug)]
pub struct Identity {
    pub issuer: IssuerId,
    /// The [`IssuerState`] that verified it; a cached identity is only used
    /// while that same state (same issuer configuration) is in force.
    pub issuer_uid: u64,
    /// Fingerprint of the verifying key; `None` for HMAC and introspection.
    pub key_id: Option<u64>,
    pub subject: Option<Box<str>>,
    /// `jti` (an API key's id), for revocations by token id.
    pub jti: Option<Box<str>>,
    /// `iat`, for revocations of a subject's older tokens.
    pub issued_at: Option<u64>,
    pub scopes: ScopeSet,
    /// Identity-header values by index into the runtime's header list.
    pub headers: Box<[(u16, HeaderValue)]>,
    /// Unix time after which this identity must be re-established.
    pub valid_until: u64,
    /// The values of the claims route conditions read (and only those).
    pub claims: ClaimValues,
    /// RFC 8705: the client certificate the token is bound to.
    pub binding: CertificateBinding,
}

/// What a token's `cnf` claim binds it to (RFC 8705 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateBinding {
    /// No `cnf.x5t#S256`: a plain bearer token.
    Unbound,
    /// SHA-256 of the certificate the client must present.
    Certificate([u8; 32]),
    /// A `cnf.x5t#S256` that is not a base64url SHA-256: no certificate
    /// can match it.
    Unusable,
}

impl CertificateBinding {
    fn of(claims: &Map<String, Value>) -> CertificateBinding {
        use base64::Engine as _;
        let Some(thumbprint) = claims.get("cnf").and_then(|cnf| cnf.get("x5t#S256")) else {
            return CertificateBinding::Unbound;
        };
        let decoded = thumbprint
            .as_str()
            .and_then(|text| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        decoded.map_or(CertificateBinding::Unusable, CertificateBinding::Certificate)
    }
}

/// Turns verified claims into an [`Identity`] under one configuration's
/// identity headers.
pub(crate) struct IdentityMaker {
    headers: Vec<IdentityHeader>,
    /// `Config::condition_claims`: the claims kept for route conditions.
    condition_claims: Vec<ClaimPath>,
}

/// Where verified claims came from.
pub(super) struct Verified<'c> {
    pub(super) issuer: IssuerId,
    pub(super) key_id: Option<u64>,
    pub(super) claims: &'c Map<String, Value>,
    pub(super) valid_until: u64,
}

impl IdentityMaker {
    pub(crate) fn new(headers: Vec<IdentityHeader>, condition_claims: Vec<ClaimPath>) -> IdentityMaker {
        IdentityMaker { headers, condition_claims }
    }

    pub(super) fn make(&self, state: &IssuerState, verified: Verified<'_>) -> Identity {
        let scopes = claims::scopes(verified.claims, &state.config().scope_claims);
        self.build(verified, scopes, state.uid)
    }

    /// The identity of an API key, from the claims a key stands for (see
    /// [`api_key_claims`]): built when the configuration is applied, through
    /// the same identity headers and claim conditions as a token's.
    pub(super) fn make_for_key(&self, key: &ApiKey) -> Identity {
        let claims = api_key_claims(key);
        let scopes = ScopeSet::new(key.scopes.iter().map(String::as_str));
        let valid_until = key.expires.unwrap_or(u64::MAX);
        let issuer = key.issuer.map_or(API_KEY_ISSUER, config::key_issuer);
        let verified = Verified { issuer, key_id: None, claims: &claims, valid_until };
        self.build(verified, scopes, 0)
    }

    fn build(&self, verified: Verified<'_>, scopes: ScopeSet, issuer_uid: u64) -> Identity {
        let claims = verified.claims;
        let headers = self
            .headers
            .iter()
            .enumerate()
            .filter_map(|(index, header)| {
                let value = match &header.source {
                    HeaderValueSource::Scopes => claims::safe_header_value(scopes.as_str()),
                    HeaderValueSource::Claim(path) => claims::lookup(claims, path).and_then(claims::header_value),
                    // Set from the connection, not the credential.
                    HeaderValueSource::ClientCert(_) => None,
                }?;
                Some((u16::try_from(index).ok()?, value))
            })
            .collect();
        let headers = in_one_buffer(headers);
        let subject = claims.get("sub").and_then(Value::as_str).map(Into::into);
        let jti = claims.get("jti").and_then(Value::as_str).map(Into::into);
        let issued_at = claims.get("iat").and_then(|iat| iat.as_u64().or_else(|| iat.as_f64().map(|f| f as u64)));
        let condition_values =
            self.condition_claims.iter().map(|path| claims::lookup(claims, path).map(condition_value)).collect();
        Identity {
            issuer: verified.issuer,
            issuer_uid,
            key_id: verified.key_id,
            subject,
            jti,
            issued_at,
            scopes,
            headers,
            valid_until: verified.valid_until,
            claims: ClaimValues(condition_values),
            binding: CertificateBinding::of(claims),
        }
    }
}

/// The header values as slices of one buffer: one allocation for all of
/// an identity's values instead of one each, which is what a verified-token
/// cache of 100,000 identities is made of.
fn in_one_buffer(headers: Vec<(u16, HeaderValue)>) -> Box<[(u16, HeaderValue)]> {
    if headers.len() < 2 {
        return headers.into_boxed_slice();
    }
    let mut buffer = Vec::with_capacity(headers.iter().map(|(_, value)| value.len()).sum());
    for (_, value) in &headers {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = bytes::Bytes::from(buffer);
    let mut start = 0;
    headers
        .into_iter()
        .map(|(index, value)| {
            let range = start..start + value.len();
            start = range.end;
            // The same bytes, already checked: this cannot fail, and keeps
            // the value's own copy if it ever did.
            let shared = HeaderValue::from_maybe_shared(buffer.slice(range)).unwrap_or(value);
            (index, shared)
        })
        .collect()
}

/// The issuer of API key identities: past every configured issuer, so no
/// route's `issuers` list contains it.
pub(crate) const API_KEY_ISSUER: IssuerId = IssuerId(usize::MAX);
/// Whether an identity comes from an API key (with or without an
/// `api_keys.issuers` name).
pub(crate) fn is_api_key(issuer: IssuerId) -> bool {
    issuer.0 >= config::KEY_ISSUER_BASE
}

/// The `iss` claim of API key identities.
pub(crate) const API_KEY_ISS: &str = "api_key";

/// What an API key stands for, as claims: `sub` (the entry's subject),
/// `scope` (its scopes, space-separated), `iss` (the fixed label `api_key`,
/// never a URL, so it cannot be mistaken for an IdP), and `api_key_id` and
/// `jti` (the entry's id: a key is revoked by its id like a token by its
/// `jti`). Identity headers and claim conditions read these; any other
/// claim is absent.
pub(crate) fn api_key_claims(key: &ApiKey) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".to_owned(), Value::String(key.subject.clone()));
    claims.insert("scope".to_owned(), Value::String(key.scopes.join(" ")));
    claims.insert("iss".to_owned(), Value::String(API_KEY_ISS.to_owned()));
    claims.insert("api_key_id".to_owned(), Value::String(key.id.clone()));
    claims.insert("jti".to_owned(), Value::String(key.id.clone()));
    claims
}

/// A claim as route conditions see it. Arrays keep their string members
/// only: conditions test membership of strings.
pub(crate) fn condition_value(value: &Value) -> ClaimValue {
    match value {
        Value::String(text) => ClaimValue::String(text.as_str().into()),
        Value::Bool(b) => ClaimValue::Bool(*b),
        Value::Number(n) => n.as_f64().map_or(ClaimValue::Other, ClaimValue::Number),
        Value::Array(items) => ClaimValue::List(items.iter().filter_map(Value::as_str).map(Into::into).collect()),
        Value::Null | Value::Object(_) => ClaimValue::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_share_one_buffer() {
        let value = |text: &'static str| HeaderValue::from_static(text);
        let headers = in_one_buffer(vec![(0, value("alice")), (2, value("a b c")), (5, value(""))]);
        let texts: Vec<_> = headers.iter().map(|(i, v)| (*i, v.to_str().unwrap())).collect();
        assert_eq!(texts, [(0, "alice"), (2, "a b c"), (5, "")]);
        let first = headers[0].1.as_bytes().as_ptr();
        assert_eq!(headers[1].1.as_bytes().as_ptr(), first.wrapping_add(5), "one contiguous buffer");
        assert_eq!(in_one_buffer(vec![(1, value("x"))])[0].1, "x");
    }

    #[test]
    fn certificate_bindings() {
        let of = |json: &str| CertificateBinding::of(&serde_json::from_str(json).unwrap());
        assert_eq!(of(r#"{"sub": "a"}"#), CertificateBinding::Unbound);
        let thumbprint = "A".repeat(43);
        assert_eq!(
            of(&format!(r#"{{"cnf": {{"x5t#S256": "{thumbprint}"}}}}"#)),
            CertificateBinding::Certificate([0; 32])
        );
        assert_eq!(of(r#"{"cnf": {"x5t#S256": "short"}}"#), CertificateBinding::Unusable);
        assert_eq!(of(r#"{"cnf": {"x5t#S256": 7}}"#), CertificateBinding::Unusable);
        // Other confirmation methods (DPoP's jkt) do not bind to a certificate.
        assert_eq!(of(r#"{"cnf": {"jkt": "abc"}}"#), CertificateBinding::Unbound);
    }

    #[test]
    fn claims_become_condition_values() {
        let value = |json: &str| condition_value(&serde_json::from_str(json).unwrap());
        assert_eq!(value("\"acme\""), ClaimValue::String("acme".into()));
        assert_eq!(value("true"), ClaimValue::Bool(true));
        assert_eq!(value("42"), ClaimValue::Number(42.0));
        assert_eq!(value("[\"ops\", 1, \"sre\"]"), ClaimValue::List(vec!["ops".into(), "sre".into()].into()));
        assert_eq!(value("{\"a\": 1}"), ClaimValue::Other);
        assert_eq!(value("null"), ClaimValue::Other);
    }
}
