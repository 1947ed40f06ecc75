//! Token verification against the real binary: every algorithm, and the
//! forgeries and claim tricks that have fooled other proxies.

use harness::client::{get, get_with_token};
use harness::fixtures::{hs_token, World, AUDIENCE, HS_ISSUER, HS_SECRET};
use harness::keys::{claims, forge, forge_hs256, jwks, TestKey};
use harness::now;
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;

/// A little over the fixture's `min_refresh_interval`.
const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1100);

fn status(w: &World, token: &str) -> u16 {
    get_with_token(w.proxy.addr, "/todos/1", token).status
}

#[test]
fn every_supported_algorithm_verifies() {
    let w = World::start();
    let es = TestKey::es256("ec-1");
    let ed = TestKey::eddsa("ed-1");
    let ps = TestKey::rsa_with("rsa-ps", Algorithm::PS256);
    w.keys.set_jwks(jwks(&[&w.rsa, &es, &ed, &ps]));
    // The start-up fetch counts against min_refresh_interval (1 s here).
    std::thread::sleep(REFRESH_INTERVAL);
    let c = w.claims("alice", "tasks:read");
    // The new keys are found by refreshing on their unknown kid.
    assert_eq!(status(&w, &w.rsa.sign(&c)), 200);
    assert_eq!(status(&w, &es.sign(&c)), 200);
    assert_eq!(status(&w, &ed.sign(&c)), 200);
    assert_eq!(status(&w, &ps.sign(&c)), 200);
    assert_eq!(status(&w, &hs_token("bob", "tasks:read")), 200);
    assert_eq!(w.upstream.count(), 5);
}

#[test]
fn alg_none_is_never_accepted_in_any_casing() {
    let w = World::start();
    let payload = w.claims("root", "tasks:read admin");
    for alg in ["none", "None", "NONE", "nOnE"] {
        for signature in [&b""[..], b"x"] {
            let token = forge(&json!({"alg": alg, "kid": "rsa-1", "typ": "JWT"}), &payload, signature);
            let r = get_with_token(w.proxy.addr, "/todos/1", &token);
            assert_eq!(r.status, 401, "alg {alg}");
            assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("algorithm"));
        }
    }
    // Two-part "unsecured" form.
    let token = format!("{}.", forge(&json!({"alg": "none"}), &payload, b"").trim_end_matches('.'));
    assert_eq!(status(&w, &token), 401);
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let w = World::start();
    let public = w.rsa.public_der.clone().expect("RSA public key");
    let payload = w.claims("root", "tasks:read admin");
    let header = json!({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"});
    // Both DER and PEM forms of the public key as the HMAC secret.
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", harness::keys::pem_body(&public));
    for secret in [public.as_slice(), pem.as_bytes()] {
        assert_eq!(status(&w, &forge_hs256(&header, &payload, secret)), 401);
    }
    // Nor is an HS256 token claiming the RSA issuer, signed with the HMAC
    // issuer's own secret.
    assert_eq!(status(&w, &forge_hs256(&header, &payload, HS_SECRET.as_bytes())), 401);
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn claim_checks() {
    let w = World::start();
    let t = now();
    let mut cases: Vec<(&str, serde_json::Value)> = Vec::new();
    let base = w.claims("alice", "tasks:read");
    let with = |key: &str, value: serde_json::Value| {
        let mut c = base.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    cases.push(("expired", with("exp", (t - 120).into())));
    cases.push(("exp as string", with("exp", (t + 3600).to_string().into())));
    cases.push(("no exp", without("exp")));
    cases.push(("nbf in the future", with("nbf", (t + 600).into())));
    cases.push(("nbf as string", with("nbf", (t - 600).to_string().into())));
    cases.push(("no iss", without("iss")));
    cases.push(("wrong iss", with("iss", "https://evil.example.com".into())));
    cases.push(("iss with trailing slash", with("iss", format!("{}/", w.keys.issuer()).into())));
    cases.push(("no aud", without("aud")));
    cases.push(("wrong aud", with("aud", "other-api".into())));
    cases.push(("aud list without ours", with("aud", json!(["a", "b"]))));
    for (case, claims) in cases {
        assert_eq!(status(&w, &w.rsa.sign(&claims)), 401, "{case}");
    }
    // Within leeway (30 s) and audience lists that include ours are fine.
    assert_eq!(status(&w, &w.rsa.sign(&with("exp", (t - 5).into()))), 200);
    assert_eq!(status(&w, &w.rsa.sign(&with("aud", json!(["other", AUDIENCE])))), 200);
    assert_eq!(w.upstream.count(), 2);
}

#[test]
fn header_tricks_are_refused() {
    let w = World::start();
    let attacker = TestKey::rsa("attacker");
    let payload = w.claims("root", "admin tasks:read");
    // Embedded jwk / jku / x5u pointing at the attacker's key: keys come
    // only from the issuer's JWKS.
    for (name, value) in [
        ("jwk", attacker.jwk.clone()),
        ("jku", json!("http://127.0.0.1:1/attacker-jwks")),
        ("x5u", json!("http://127.0.0.1:1/attacker.pem")),
    ] {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("attacker".into());
        match name {
            "jwk" => header.jwk = serde_json::from_value(value).ok(),
            "jku" => header.jku = value.as_str().map(str::to_owned),
            _ => header.x5u = value.as_str().map(str::to_owned),
        }
        assert_eq!(status(&w, &attacker.sign_with_header(&header, &payload)), 401, "{name}");
    }
    // Same kid, another key.
    assert_eq!(status(&w, &attacker.with_kid("rsa-1").sign(&payload)), 401);
    // Unknown critical header parameter.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let token = w.rsa.sign_with_header(&header, &payload);
    let [_, body, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    use base64::Engine;
    let crit_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"alg":"RS256","kid":"rsa-1","crit":["exp"],"exp":1}).to_string());
    assert_eq!(status(&w, &format!("{crit_header}.{body}.{signature}")), 401);
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn truncated_or_extended_segments_are_refused() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{token}.extra"),
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 4]),
        format!("{}.{}x.{}", parts[0], parts[1], parts[2]),
        format!("{token}="),
    ];
    for case in &cases {
        assert_eq!(status(&w, case), 401, "{case}");
    }
    assert_eq!(status(&w, &token), 200);
}

#[test]
fn a_token_without_kid_uses_the_only_key_and_fails_with_several() {
    let w = World::start();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = None;
    let claims = w.claims("alice", "tasks:read");
    assert_eq!(status(&w, &w.rsa.sign_with_header(&header, &claims)), 200);
    let second = TestKey::rsa("rsa-2");
    w.keys.set_jwks(jwks(&[&w.rsa, &second]));
    std::thread::sleep(REFRESH_INTERVAL);
    // Make the proxy learn about the second key.
    assert_eq!(status(&w, &second.sign(&claims)), 200);
    // A new token (the first one is in the verified-token cache).
    let fresh = w.claims("alice-again", "tasks:read");
    let r = get_with_token(w.proxy.addr, "/todos/1", &w.rsa.sign_with_header(&header, &fresh));
    assert_eq!(r.status, 401);
    assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("no key id"));
}

#[test]
fn unknown_kids_refresh_the_jwks_at_most_once_per_interval() {
    let w = World::start();
    std::thread::sleep(REFRESH_INTERVAL);
    let before = w.keys.jwks_hits();
    let claims = w.claims("alice", "tasks:read");
    for n in 0..200 {
        let stranger = w.rsa.with_kid(&format!("random-{n}"));
        assert_eq!(status(&w, &stranger.sign(&claims)), 401);
    }
    let fetched = w.keys.jwks_hits() - before;
    // min_refresh_interval is 1 s in the fixture; 200 requests take well
    // under a few seconds, so a handful of fetches at most, never 200.
    assert!(fetched <= 6, "{fetched} JWKS fetches for 200 unknown kids");
    assert!(fetched >= 1, "an unknown kid triggers a refresh");
}

#[test]
fn the_hmac_issuer_is_separate_from_the_rsa_issuer() {
    let w = World::start();
    // An HS256 token naming the RSA issuer is refused (alg pinned per issuer).
    let forged = TestKey::hmac(HS_SECRET.as_bytes()).sign(&claims(&w.keys.issuer(), AUDIENCE, "root", "admin"));
    assert_eq!(status(&w, &forged), 401);
    // An RS256 token naming the HMAC issuer is refused too.
    let forged = w.rsa.sign(&claims(HS_ISSUER, AUDIENCE, "root", "tasks:read"));
    assert_eq!(status(&w, &forged), 401);
    // A per-route issuer restriction holds for valid tokens.
    assert_eq!(get_with_token(w.proxy.addr, "/sso-only/x", &hs_token("bob", "")).status, 401);
    assert_eq!(get_with_token(w.proxy.addr, "/sso-only/x", &w.token("alice", "")).status, 200);
    assert_eq!(get(w.proxy.addr, "/sso-only/x", &[]).status, 401);
}

#[test]
fn the_verified_token_cache_serves_repeats_without_crypto() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    for _ in 0..20 {
        assert_eq!(status(&w, &token), 200);
    }
    let hits = w.proxy.metric("portcullis_token_cache_hits_total").unwrap_or(0.0);
    let misses = w.proxy.metric("portcullis_token_cache_misses_total").unwrap_or(0.0);
    assert!(hits >= 19.0, "hits {hits}");
    assert_eq!(misses, 1.0);
}
