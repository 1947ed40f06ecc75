//! Token verification against the real binary: every algorithm, key
//! selection, several issuers, the verified-token cache. Forgeries and claim
//! tricks are in `attacks.rs`.

use harness::client::{get, get_with_token};
use harness::fixtures::{hs_token, World, AUDIENCE, HS_ISSUER, HS_SECRET};
use harness::keys::{claims, jwks, TestKey};
use jsonwebtoken::{Algorithm, Header};

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
