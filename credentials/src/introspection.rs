//! RFC 7662 introspection responses: what an IdP's answer about an opaque
//! token means for this proxy.

use config::{Introspection, Issuer};
use serde_json::{Map, Value};

/// The IdP's answer about one token.
pub enum Answer {
    /// Active: the claims (the introspection response) and until when they
    /// may be used.
    Active {
        claims: Map<String, Value>,
        valid_until: u64,
    },
    Inactive,
}

/// Decide what an introspection response means for this proxy. `active`
/// alone is not enough: the token must also be for us (audience), from this
/// issuer, and unexpired by our clock.
pub fn judge(claims: Map<String, Value>, issuer: &Issuer, settings: &Introspection, now: u64) -> Answer {
    if claims.get("active") != Some(&Value::Bool(true)) {
        return Answer::Inactive;
    }
    let leeway = issuer.leeway.as_secs();
    // NumericDate: a number, possibly fractional (RFC 7519 2). Any other
    // type makes the answer unusable rather than the claim absent.
    let (Ok(exp), Ok(nbf)) = (numeric_date(&claims, "exp"), numeric_date(&claims, "nbf")) else {
        return Answer::Inactive;
    };
    if exp.is_some_and(|exp| exp.saturating_add(leeway) < now) {
        return Answer::Inactive;
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Answer::Inactive;
    }
    if let Some(iss) = claims.get("iss") {
        if iss.as_str() != Some(issuer.issuer.as_str()) {
            return Answer::Inactive;
        }
    }
    if !issuer.any_audience {
        let matches = match claims.get("aud") {
            Some(Value::String(aud)) => issuer.audiences.contains(aud),
            Some(Value::Array(list)) => {
                list.iter().filter_map(Value::as_str).any(|a| issuer.audiences.iter().any(|x| x == a))
            }
            _ => false,
        };
        if !matches {
            return Answer::Inactive;
        }
    }
    let max_until = now.saturating_add(settings.max_ttl.as_secs());
    let valid_until = exp.map_or(max_until, |exp| exp.saturating_add(leeway).min(max_until));
    Answer::Active { claims, valid_until }
}

/// A time claim in whole seconds (fractions cut toward expiry: an `exp` of
/// 10.5 ends at 10), `None` when absent, `Err` when not a number. Negative
/// times are in the past.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, ()> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(seconds), _) => Ok(Some(seconds)),
            (None, Some(seconds)) if seconds.is_finite() => Ok(Some(seconds.max(0.0) as u64)),
            _ => Err(()),
        },
        Some(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::{KeySource, Secret};
    use serde_json::json;
    use std::time::Duration;

    fn issuer_with(audiences: &[&str]) -> (Issuer, Introspection) {
        let settings = Introspection {
            endpoint: Some("http://127.0.0.1:1/introspect".into()),
            client_id: "c".into(),
            client_secret: Some(Secret::new(b"s".to_vec())),
            client_secret_env: "S".into(),
            max_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(10),
            max_entries: 10,
            max_calls_per_second: 50,
        };
        let issuer = Issuer {
            name: "idp".into(),
            issuer: "https://idp.example.com".into(),
            keys: KeySource::Discovery { url: "https://idp.example.com/.well-known/openid-configuration".into() },
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            any_audience: audiences.is_empty(),
            algorithms: vec![config::Algorithm::RS256],
            leeway: Duration::from_secs(30),
            scope_claims: vec![],
            token_types: vec![],
            jwks_refresh: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(30),
            http_timeout: Duration::from_secs(5),
            introspection: Some(settings.clone()),
            audience_claims: vec![config::ClaimPath(vec!["aud".into()])],
            required_claims: vec![],
            require_bound_tokens: false,
        };
        (issuer, settings)
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn active_tokens_for_us_are_accepted_until_the_earlier_of_exp_and_max_ttl() {
        let (issuer, settings) = issuer_with(&["api"]);
        let answer = judge(
            claims(json!({"active": true, "aud": "api", "exp": NOW + 60, "iss": "https://idp.example.com"})),
            &issuer,
            &settings,
            NOW,
        );
        assert!(matches!(answer, Answer::Active { valid_until, .. } if valid_until == NOW + 90));
        let answer = judge(claims(json!({"active": true, "aud": ["x", "api"]})), &issuer, &settings, NOW);
        assert!(matches!(answer, Answer::Active { valid_until, .. } if valid_until == NOW + 300));
        let fractional = json!({"active": true, "aud": "api", "exp": (NOW + 10) as f64 + 0.5});
        let answer = judge(claims(fractional), &issuer, &settings, NOW);
        assert!(matches!(answer, Answer::Active { valid_until, .. } if valid_until == NOW + 40));
    }

    #[test]
    fn everything_else_is_inactive() {
        let (issuer, settings) = issuer_with(&["api"]);
        for body in [
            json!({"active": false}),
            json!({"active": "true", "aud": "api"}),
            json!({"aud": "api"}),
            json!({"active": true}),
            json!({"active": true, "aud": "other"}),
            json!({"active": true, "aud": "api", "exp": NOW - 31}),
            json!({"active": true, "aud": "api", "nbf": NOW + 31}),
            json!({"active": true, "aud": "api", "iss": "https://evil.example.com"}),
            json!({"active": true, "aud": "api", "exp": -1}),
            json!({"active": true, "aud": "api", "exp": (NOW - 31) as f64 + 0.5}),
            json!({"active": true, "aud": "api", "exp": (NOW + 60).to_string()}),
            json!({"active": true, "aud": "api", "nbf": "9999999999"}),
        ] {
            assert!(matches!(judge(claims(body.clone()), &issuer, &settings, NOW), Answer::Inactive), "{body}");
        }
        let (any, settings) = issuer_with(&[]);
        assert!(matches!(judge(claims(json!({"active": true})), &any, &settings, NOW), Answer::Active { .. }));
    }
}
