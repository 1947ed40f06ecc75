//! ID tokens (OpenID Connect Core 3.1.3.7), verified at the end of a
//! browser sign-in with the issuer's keys exactly as bearer tokens are
//! (pinned `alg`, key by `kid`, `iss`, `exp`, `nbf`), and then as an ID
//! token: `aud` holds the client, `azp` names it when present (and must
//! be present with several audiences), `nonce` is the one this sign-in
//! sent, and `at_hash`, when present, matches the access token.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::Algorithm;
use credentials::jws::{self, ClaimRules};
use credentials::keys::KeyLookup;
use credentials::peek;
use serde_json::{Map, Value};

use super::issuer::IssuerState;
use super::source::bearer_jwt::{current_keys, describe};
use super::AuthError;
use crate::idp::unix_now;

/// What an ID token must match besides the issuer's rules.
pub(crate) struct Expected<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) nonce: &'a str,
    /// The access token issued with it, for `at_hash`.
    pub(crate) access_token: Option<&'a str>,
}

/// The ID token's verified claims.
pub(crate) async fn verify(
    state: &IssuerState,
    token: &str,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, AuthError> {
    let invalid = AuthError::InvalidToken;
    let peeked = peek::peek(token).map_err(|_| invalid("the ID token is malformed"))?;
    let issuer = state.config();
    if peeked.issuer.as_deref() != Some(issuer.issuer.as_str()) {
        return Err(invalid("the ID token is from another issuer"));
    }
    let alg = Algorithm::from_name(&peeked.header.alg)
        .filter(|a| issuer.algorithms.contains(a))
        .ok_or(invalid("the ID token's algorithm is not allowed"))?;
    if peeked.header.crit.is_some() {
        return Err(invalid("the ID token has critical header parameters"));
    }
    let kid = peeked.header.kid.as_deref();
    let keys = current_keys(state, kid, alg).await?;
    let Some(key) = (match keys.lookup(kid, alg) {
        KeyLookup::Found(key) => key.for_alg(alg),
        _ => None,
    }) else {
        return Err(invalid("the ID token is signed with an unknown key"));
    };
    let client = [expected.client_id.to_owned()];
    let rules = ClaimRules {
        issuer: &issuer.issuer,
        audiences: Some(&client),
        require_subject: true,
        leeway: issuer.leeway.as_secs(),
    };
    let claims = jws::verify(&peeked, key, &rules, unix_now()).map_err(|e| invalid(describe(e)))?.claims;
    check_claims(&claims, expected, alg)?;
    Ok(claims)
}

/// The rules after the signature: `nonce`, `azp`, `at_hash`.
fn check_claims(claims: &Map<String, Value>, expected: &Expected<'_>, alg: Algorithm) -> Result<(), AuthError> {
    let invalid = AuthError::InvalidToken;
    if claims.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(invalid("the ID token's nonce is not this sign-in's"));
    }
    let several_audiences = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == expected.client_id => {}
        None if !several_audiences => {}
        _ => return Err(invalid("the ID token's authorized party (azp) is not this client")),
    }
    if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), expected.access_token) {
        if at_hash.as_str() != Some(token_hash(access_token, alg).as_str()) {
            return Err(invalid("the ID token's at_hash does not match the access token"));
        }
    }
    Ok(())
}

/// `at_hash`: the left half of the access token's hash under the hash of
/// the ID token's `alg`, base64url.
fn token_hash(token: &str, alg: Algorithm) -> String {
    let algorithm = match alg.name() {
        name if name.ends_with("384") => &digest::SHA384,
        name if name.ends_with("512") || name == "EdDSA" => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let hash = digest::digest(algorithm, token.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Map<String, Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    const EXPECTED: Expected<'static> = Expected { client_id: "web", nonce: "n1", access_token: Some("at") };

    #[test]
    fn nonce_azp_and_at_hash_are_checked() {
        let at_hash = token_hash("at", Algorithm::RS256);
        let good = claims(serde_json::json!({"nonce": "n1", "aud": "web", "at_hash": at_hash}));
        assert_eq!(check_claims(&good, &EXPECTED, Algorithm::RS256), Ok(()));
        for bad in [
            serde_json::json!({"aud": "web"}),
            serde_json::json!({"nonce": "n2", "aud": "web"}),
            serde_json::json!({"nonce": "n1", "aud": ["web", "other"]}),
            serde_json::json!({"nonce": "n1", "aud": "web", "azp": "other"}),
            serde_json::json!({"nonce": "n1", "aud": "web", "at_hash": "AAAA"}),
        ] {
            assert!(check_claims(&claims(bad.clone()), &EXPECTED, Algorithm::RS256).is_err(), "{bad}");
        }
        let several = claims(serde_json::json!({"nonce": "n1", "aud": ["web", "x"], "azp": "web"}));
        assert_eq!(check_claims(&several, &EXPECTED, Algorithm::RS256), Ok(()));
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_hash() {
        // OpenID Connect Core A.3's example: at_hash of this access token
        // under RS256.
        assert_eq!(
            token_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", Algorithm::RS256),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
