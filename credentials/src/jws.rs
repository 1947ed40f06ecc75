//! Verifying a compact JWS: its signature, with a key parsed once when its
//! JWKS (or secret) was loaded, then the registered claims (RFC 7519 4.1).
//!
//! The token reaches this module already peeked ([`crate::peek`]): its
//! header and payload were decoded once to choose the issuer and key, and
//! nothing here decodes them again. Nothing in the payload is trusted until
//! the signature over the exact bytes it came from has been checked.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::Algorithm;
use serde_json::{Map, Value};

use crate::peek::Peeked;

/// One key, ready for one algorithm. An RSA key published for RS256 and
/// PS256 is two of these: aws-lc binds a parsed key to its algorithm.
pub struct SignatureKey {
    alg: Algorithm,
    key: PreparedKey,
}

enum PreparedKey {
    /// The public key as aws-lc uses it (for RSA, with its Montgomery
    /// set-up cached after the first verification rather than redone for
    /// every token).
    Public(ParsedPublicKey),
    /// Boxed: aws-lc's HMAC key holds its precomputed contexts (1.2 KB).
    Hmac(Box<hmac::Key>),
}

/// The public key material of a JWK, decoded from base64url.
#[derive(Debug, Clone)]
pub enum PublicKeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point: `0x04 ‖ x ‖ y`.
    EcPoint(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl SignatureKey {
    /// `material` prepared for `alg`, or `None` when they do not go
    /// together (a P-384 point for ES256, an RSA key for EdDSA) or the
    /// material is not a valid key.
    pub fn public(alg: Algorithm, material: &PublicKeyMaterial) -> Option<SignatureKey> {
        let verification = verification_algorithm(alg)?;
        let parsed = match material {
            PublicKeyMaterial::Rsa { n, e } if is_rsa(alg) => {
                ParsedPublicKey::new(verification, rsa_public_key_der(n, e)?)
            }
            PublicKeyMaterial::EcPoint(point) if matches!(alg, Algorithm::ES256 | Algorithm::ES384) => {
                ParsedPublicKey::new(verification, point)
            }
            PublicKeyMaterial::Ed25519(x) if alg == Algorithm::EdDSA => ParsedPublicKey::new(verification, x),
            _ => return None,
        };
        Some(SignatureKey { alg, key: PreparedKey::Public(parsed.ok()?) })
    }

    /// A shared secret for an HMAC algorithm.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Option<SignatureKey> {
        let algorithm = match alg {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            _ => return None,
        };
        Some(SignatureKey { alg, key: PreparedKey::Hmac(Box::new(hmac::Key::new(algorithm, secret))) })
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is this key's signature of `message`. HMAC tags
    /// are compared in constant time.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            PreparedKey::Public(key) => key.verify_sig(message, signature).is_ok(),
            PreparedKey::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

fn is_rsa(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
    )
}

/// RSA keys of 2048 bits or more, as jsonwebtoken verified them before;
/// ECDSA signatures in JOSE's fixed `r ‖ s` form (RFC 7518 3.4).
fn verification_algorithm(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    })
}

/// The DER `RSAPublicKey` (RFC 8017 A.1.1) of a JWK's `n` and `e`, which
/// are unsigned big-endian: leading zero bytes go, and a zero byte comes
/// back where the top bit is set, as DER's signed INTEGER wants.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    fn integer(out: &mut Vec<u8>, value: &[u8]) -> Option<()> {
        let start = value.iter().position(|&b| b != 0)?;
        let value = &value[start..];
        let pad = value[0] & 0x80 != 0;
        out.push(0x02);
        length(out, value.len() + usize::from(pad))?;
        if pad {
            out.push(0);
        }
        out.extend_from_slice(value);
        Some(())
    }
    fn length(out: &mut Vec<u8>, len: usize) -> Option<()> {
        match len {
            0..0x80 => out.push(len as u8),
            0x80..0x100 => out.extend_from_slice(&[0x81, len as u8]),
            0x100..0x10000 => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
            _ => return None,
        }
        Some(())
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 8);
    integer(&mut body, n)?;
    integer(&mut body, e)?;
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    length(&mut der, body.len())?;
    der.extend_from_slice(&body);
    Some(der)
}

/// What the registered claims must say.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// `iss` must be present and equal this.
    pub issuer: &'a str,
    /// `Some`: `aud` must be present and name one of these. `None`: `aud`
    /// is not looked at here (any audience, or audiences read from other
    /// claims by the caller).
    pub audiences: Option<&'a [String]>,
    /// `sub` must be present (ID tokens).
    pub require_subject: bool,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is invalid")]
    BadSignature,
    /// A required claim is absent, null or not of its type.
    #[error("the token has no {0}")]
    MissingClaim(&'static str),
    #[error("a time claim of the token is malformed")]
    MalformedTime,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token is not for this audience")]
    WrongAudience,
}

/// A token whose signature and registered claims hold.
#[derive(Debug)]
pub struct VerifiedJws {
    pub claims: Map<String, Value>,
    /// `exp`, as a number of seconds.
    pub expires_at: u64,
}

/// Check the signature of the peeked token with `key`, then its claims
/// against `rules` at `now` (seconds since the epoch). The caller has
/// checked the header (`alg` pinned, no `crit`) and chosen `key` for it.
pub fn verify(
    peeked: &Peeked<'_>,
    key: &SignatureKey,
    rules: &ClaimRules<'_>,
    now: u64,
) -> Result<VerifiedJws, JwsError> {
    if Algorithm::from_name(&peeked.header.alg) != Some(key.alg) {
        return Err(JwsError::BadSignature);
    }
    let signature = URL_SAFE_NO_PAD.decode(peeked.signature).map_err(|_| JwsError::Malformed)?;
    if !key.verifies(peeked.signing_input.as_bytes(), &signature) {
        return Err(JwsError::BadSignature);
    }
    let claims: Map<String, Value> = serde_json::from_slice(&peeked.payload).map_err(|_| JwsError::Malformed)?;
    let expires_at = check_claims(&claims, rules, now)?;
    Ok(VerifiedJws { claims, expires_at })
}

/// The registered claims: presence first (a required claim of the wrong
/// type counts as absent), then time, then issuer and audience.
pub fn check_claims(claims: &Map<String, Value>, rules: &ClaimRules<'_>, now: u64) -> Result<u64, JwsError> {
    let present = |name| claims.get(name).filter(|v| !v.is_null());
    let exp = match present("exp").map(numeric_date) {
        Some(Some(exp)) => exp,
        _ => return Err(JwsError::MissingClaim("exp")),
    };
    let Some(Value::String(iss)) = present("iss") else {
        return Err(JwsError::MissingClaim("iss"));
    };
    let audience = match rules.audiences {
        Some(_) => match present("aud") {
            Some(aud @ (Value::String(_) | Value::Array(_))) => Some(aud),
            _ => return Err(JwsError::MissingClaim("aud")),
        },
        None => None,
    };
    if rules.require_subject && !matches!(present("sub"), Some(Value::String(_))) {
        return Err(JwsError::MissingClaim("sub"));
    }
    let nbf = match present("nbf") {
        None => None,
        Some(nbf) => Some(numeric_date(nbf).ok_or(JwsError::MalformedTime)?),
    };
    if exp < now.saturating_sub(rules.leeway) {
        return Err(JwsError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(rules.leeway)) {
        return Err(JwsError::NotYetValid);
    }
    if iss != rules.issuer {
        return Err(JwsError::WrongIssuer);
    }
    if let (Some(audience), Some(accepted)) = (audience, rules.audiences) {
        let accepted = |aud: &Value| aud.as_str().is_some_and(|aud| accepted.iter().any(|a| a == aud));
        let ok = match audience {
            Value::Array(values) => values.iter().any(accepted),
            single => accepted(single),
        };
        if !ok {
            return Err(JwsError::WrongAudience);
        }
    }
    Ok(exp)
}

/// A NumericDate (RFC 7519 2): seconds, an integer or a finite
/// non-negative fraction (rounded). Anything else is malformed.
fn numeric_date(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    let seconds = number.as_f64()?;
    (seconds.is_finite() && (0.0..u64::MAX as f64).contains(&seconds)).then(|| seconds.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn rules<'a>(audiences: Option<&'a [String]>) -> ClaimRules<'a> {
        ClaimRules { issuer: "https://idp", audiences, require_subject: false, leeway: 30 }
    }

    fn check(claims: Value, audiences: Option<&[String]>) -> Result<u64, JwsError> {
        check_claims(claims.as_object().expect("an object"), &rules(audiences), NOW)
    }

    #[test]
    fn time_claims_with_leeway() {
        let ok = |exp: Value| check(json!({"iss": "https://idp", "exp": exp}), None);
        assert_eq!(ok(json!(NOW + 10)), Ok(NOW + 10));
        assert_eq!(ok(json!(NOW - 30)), Ok(NOW - 30), "at the edge of the leeway");
        assert_eq!(ok(json!(NOW - 31)), Err(JwsError::Expired));
        assert_eq!(ok(json!((NOW + 10) as f64 + 0.4)), Ok(NOW + 10), "fractions are rounded");
        for malformed in [json!("soon"), json!(-1), json!(true), json!({}), json!([NOW])] {
            assert_eq!(ok(malformed.clone()), Err(JwsError::MissingClaim("exp")), "{malformed}");
        }
        assert_eq!(check(json!({"iss": "https://idp"}), None), Err(JwsError::MissingClaim("exp")));
        assert_eq!(check(json!({"iss": "https://idp", "exp": null}), None), Err(JwsError::MissingClaim("exp")));
        let nbf = |nbf: Value| check(json!({"iss": "https://idp", "exp": NOW + 100, "nbf": nbf}), None);
        assert_eq!(nbf(json!(NOW + 30)), Ok(NOW + 100));
        assert_eq!(nbf(json!(NOW + 31)), Err(JwsError::NotYetValid));
        assert_eq!(nbf(json!(null)), Ok(NOW + 100));
        assert_eq!(nbf(json!("now")), Err(JwsError::MalformedTime));
    }

    #[test]
    fn issuer_and_audience() {
        let accepted = ["api".to_string(), "other-api".to_string()];
        let with = |claims: Value| check(claims, Some(&accepted));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW, "aud": "api"})), Ok(NOW));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW, "aud": ["x", "other-api"]})), Ok(NOW));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW, "aud": "x"})), Err(JwsError::WrongAudience));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW, "aud": []})), Err(JwsError::WrongAudience));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW, "aud": [5]})), Err(JwsError::WrongAudience));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW})), Err(JwsError::MissingClaim("aud")));
        assert_eq!(with(json!({"iss": "https://idp", "exp": NOW, "aud": 5})), Err(JwsError::MissingClaim("aud")));
        assert_eq!(check(json!({"iss": "https://idp", "exp": NOW, "aud": 5}), None), Ok(NOW), "not looked at");
        assert_eq!(with(json!({"iss": "https://other", "exp": NOW, "aud": "api"})), Err(JwsError::WrongIssuer));
        assert_eq!(with(json!({"iss": ["https://idp"], "exp": NOW, "aud": "api"})), Err(JwsError::MissingClaim("iss")));
        let id_token = ClaimRules { require_subject: true, ..rules(None) };
        let claims = json!({"iss": "https://idp", "exp": NOW});
        assert_eq!(check_claims(claims.as_object().unwrap(), &id_token, NOW), Err(JwsError::MissingClaim("sub")));
    }

    #[test]
    fn rsa_integers_are_minimal_der() {
        let der = rsa_public_key_der(&[0, 0, 0x80, 1], &[1, 0, 1]).unwrap();
        assert_eq!(der, [0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(rsa_public_key_der(&[0, 0], &[1]), None, "a zero modulus is no key");
        let long = rsa_public_key_der(&[0x7f; 256], &[3]).unwrap();
        assert_eq!(&long[..8], &[0x30, 0x82, 0x01, 0x07, 0x02, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn hmac_keys_verify_their_own_tags_only() {
        let key = SignatureKey::hmac(Algorithm::HS256, b"secret").unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"secret"), b"message");
        assert!(key.verifies(b"message", tag.as_ref()));
        assert!(!key.verifies(b"message!", tag.as_ref()));
        assert!(!key.verifies(b"message", &tag.as_ref()[..31]));
        assert!(SignatureKey::hmac(Algorithm::RS256, b"secret").is_none());
        assert!(SignatureKey::public(Algorithm::HS256, &PublicKeyMaterial::Ed25519(vec![0; 32])).is_none());
        assert!(SignatureKey::public(Algorithm::ES256, &PublicKeyMaterial::Ed25519(vec![0; 32])).is_none());
    }
}
