//! RFC 7662 introspection responses, and the claims read from them.
//!
//! Input: the response body. Judged for an issuer with audience "todo-api"
//! and for one that accepts any audience, at a fixed `now`.
//!
//! Invariants (for an `Active` answer):
//! - "active" is the JSON boolean true;
//! - "iss", if present, is exactly the issuer;
//! - "aud" is the configured audience or an array containing it (unless the
//!   issuer accepts any audience);
//! - "exp", if present (and not null), is a number and exp + leeway >= now;
//!   "nbf", if present, is a number and nbf <= now + leeway (a time claim
//!   that is not a number is not silently ignored);
//! - now <= valid_until <= now + max_ttl, and valid_until <= exp + leeway;
//! - the claims handed back are the response, unchanged.
//!
//! And for the claims of any response: scopes read from "scope"/"scp"/
//! "realm_access.roles" are unique RFC 6749 scope-tokens (no whitespace:
//! the scope header joins them with spaces); identity-header values are
//! visible ASCII with inner spaces only.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use config::{Algorithm, ClaimPath, Introspection, Issuer, KeySource, Secret};
use credentials::claims;
use credentials::introspection::{judge, Answer};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;
const MAX_TTL: u64 = 300;
const ISSUER: &str = "https://sso.example.com/realms/app";
const AUDIENCE: &str = "todo-api";

struct Fixture {
    strict: Issuer,
    any: Issuer,
    settings: Introspection,
    scope_claims: Vec<ClaimPath>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let settings = Introspection {
            endpoint: Some("https://sso.example.com/introspect".into()),
            client_id: "portcullis".into(),
            client_secret: Some(Secret::new(b"s3cret".to_vec())),
            client_secret_env: "INTROSPECTION_SECRET".into(),
            max_ttl: Duration::from_secs(MAX_TTL),
            negative_ttl: Duration::from_secs(10),
            max_entries: 100,
            max_calls_per_second: 50,
        };
        let path = |p: &str| ClaimPath(p.split('.').map(str::to_owned).collect());
        let scope_claims = vec![path("scope"), path("scp"), path("realm_access.roles")];
        let strict = Issuer {
            name: "sso".into(),
            issuer: ISSUER.into(),
            keys: KeySource::Discovery { url: format!("{ISSUER}/.well-known/openid-configuration") },
            audiences: vec![AUDIENCE.into()],
            any_audience: false,
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(LEEWAY),
            scope_claims: scope_claims.clone(),
            token_types: vec![],
            jwks_refresh: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(30),
            http_timeout: Duration::from_secs(5),
            introspection: Some(settings.clone()),
            audience_claims: vec![path("aud")],
            required_claims: vec![],
            require_bound_tokens: false,
        };
        let any = Issuer { audiences: vec![], any_audience: true, ..strict.clone() };
        Fixture { strict, any, settings, scope_claims }
    })
}

fn check_active(body: &Map<String, Value>, issuer: &Issuer, settings: &Introspection) {
    let Answer::Active { claims, valid_until } = judge(body.clone(), issuer, settings, NOW) else { return };
    assert_eq!(&claims, body, "claims changed");
    assert_eq!(body.get("active"), Some(&Value::Bool(true)), "active without \"active\": true");
    if let Some(iss) = body.get("iss") {
        assert_eq!(iss.as_str(), Some(ISSUER), "active for another issuer");
    }
    if !issuer.any_audience {
        let for_us = match body.get("aud") {
            Some(Value::String(aud)) => aud == AUDIENCE,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
            _ => false,
        };
        assert!(for_us, "active without our audience: {:?}", body.get("aud"));
    }
    assert!(valid_until >= NOW, "valid_until {valid_until} is in the past");
    assert!(valid_until <= NOW + MAX_TTL, "valid_until {valid_until} beyond max_ttl");
    // An "exp"/"nbf" that is a float, negative or a string must not be
    // ignored (regressions/introspection/exp-*, nbf-*).
    if let Some(exp) = body.get("exp").filter(|e| !e.is_null()) {
        let exp = exp.as_f64().unwrap_or_else(|| panic!("active with a non-numeric exp {exp}"));
        assert!(exp + LEEWAY as f64 >= NOW as f64, "active although exp {exp} has passed");
        assert!(valid_until as f64 <= exp.floor() + LEEWAY as f64, "valid_until {valid_until} beyond exp {exp}");
    }
    if let Some(nbf) = body.get("nbf").filter(|n| !n.is_null()) {
        let nbf = nbf.as_f64().unwrap_or_else(|| panic!("active with a non-numeric nbf {nbf}"));
        assert!(nbf <= (NOW + LEEWAY) as f64, "active although nbf {nbf} is in the future");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Map<String, Value>>(data) else { return };
    let fixture = fixture();
    check_active(&body, &fixture.strict, &fixture.settings);
    check_active(&body, &fixture.any, &fixture.settings);

    let scopes = claims::scopes(&body, &fixture.scope_claims);
    let list: Vec<&str> = scopes.iter().collect();
    for scope in &list {
        assert!(!scope.is_empty(), "empty scope");
        // RFC 6749 scope-tokens (%x21 / %x23-5B / %x5D-7E): an array item
        // "read admin" would read as two scopes in the space-joined
        // X-Auth-Scopes (regressions/introspection/scope-array-item-with-space).
        assert!(
            scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)),
            "scope {scope:?} is not a scope-token: X-Auth-Scopes could show it as several scopes"
        );
    }
    let mut sorted = list.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), list.len(), "duplicate scopes");
    for scope in &list {
        assert!(scopes.contains(scope));
    }

    for value in body.values() {
        if let Some(header) = claims::header_value(value) {
            let bytes = header.as_bytes();
            assert!(!bytes.is_empty());
            assert!(bytes.iter().all(|&b| b == b' ' || b.is_ascii_graphic()), "unsafe header value {header:?}");
            assert!(bytes[0] != b' ' && bytes[bytes.len() - 1] != b' ');
        }
    }
});
