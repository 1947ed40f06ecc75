//! The JWKS lifecycle against a key server whose faults the test controls:
//! periodic refresh, max-age, rotation and removal, outages at start and
//! later, malformed and oversized documents, bounded IdP traffic.

use std::time::Duration;

use harness::client::get_with_token;
use harness::config::TestConfig;
use harness::fixtures::{AUDIENCE, HS_ENV, HS_SECRET};
use harness::keys::{claims, jwks, TestKey};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::{KeyServer, KeyServerMode, Upstream};
use harness::{free_port, wait_until};

/// The standard policy, with `jwks_refresh` for the JWKS issuer when given.
fn config_with(keys_issuer: &str, upstream: &Upstream, jwks_refresh: Option<&str>) -> String {
    let config = TestConfig::new(keys_issuer, &upstream.url());
    match jwks_refresh {
        Some(interval) => config.issuer_option("jwks_refresh", interval),
        None => config,
    }
    .render()
}

fn start(config: &str, wait_ready: bool) -> Proxy {
    Proxy::start_with(ProxyOptions { config, env: &[(HS_ENV, HS_SECRET)], wait_ready })
}

fn token(key: &TestKey, issuer: &str, sub: &str) -> String {
    key.sign(&claims(issuer, AUDIENCE, sub, "tasks:read"))
}

#[test]
fn rotation_adds_new_keys_and_retires_removed_ones_even_from_the_cache() {
    let upstream = Upstream::start("api");
    let old = TestKey::rsa("old");
    let new = TestKey::rsa("new");
    let keys = KeyServer::start(jwks(&[&old]));
    let proxy = start(&config_with(&keys.issuer(), &upstream, Some("1s")), true);
    let issuer = keys.issuer();

    let cached = token(&old, &issuer, "alice");
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &cached).status, 200);
    // Rotate: the IdP now publishes only the new key.
    keys.set_jwks(jwks(&[&new]));
    let switched = wait_until(Duration::from_secs(6), || {
        get_with_token(proxy.addr, "/todos/1", &token(&new, &issuer, "bob")).status == 200
    });
    assert!(switched, "the new key is accepted after a refresh");
    // The removed key is refused, for fresh tokens and for the one that was
    // verified (and cached) before the rotation.
    let removed = wait_until(Duration::from_secs(6), || get_with_token(proxy.addr, "/todos/1", &cached).status == 401);
    assert!(removed, "a cached verification by a removed key is not served");
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &token(&old, &issuer, "carol")).status, 401);
}

#[test]
fn keys_stay_in_use_while_the_idp_is_down() {
    let upstream = Upstream::start("api");
    let key = TestKey::rsa("rsa-1");
    let keys = KeyServer::start(jwks(&[&key]));
    let proxy = start(&config_with(&keys.issuer(), &upstream, Some("1s")), true);
    let issuer = keys.issuer();
    for (n, mode) in [KeyServerMode::Fail(503), KeyServerMode::Hang, KeyServerMode::Garbage].into_iter().enumerate() {
        keys.set_mode(mode);
        std::thread::sleep(Duration::from_millis(2500));
        // Fresh tokens (not cached) still verify with the keys held.
        let r = get_with_token(proxy.addr, "/todos/1", &token(&key, &issuer, &format!("user-{n}")));
        assert_eq!(r.status, 200, "{mode:?}: {}", r.text());
        assert_eq!(proxy.admin_get("/readyz").status, 200, "{mode:?}: keys held, still ready");
    }
    let metrics = proxy.metrics();
    for result in ["http_error", "invalid"] {
        let series = format!("portcullis_jwks_fetches_total{{issuer=\"sso\",result=\"{result}\"}}");
        assert!(harness::proxy::parse_metric(&metrics, &series).unwrap_or(0.0) >= 1.0, "{series}\n{metrics}");
    }
}

#[test]
fn an_idp_unreachable_at_start_gives_503_then_recovers_by_itself() {
    let upstream = Upstream::start("api");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let proxy = start(&config_with(&issuer, &upstream, None), false);
    let key = TestKey::rsa("rsa-1");
    assert_eq!(proxy.admin_get("/readyz").status, 503);
    let r = get_with_token(proxy.addr, "/todos/1", &token(&key, &issuer, "alice"));
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());

    let _keys = KeyServer::start_on(port, jwks(&[&key]));
    let ready = wait_until(Duration::from_secs(10), || proxy.admin_get("/readyz").status == 200);
    assert!(ready, "readiness recovers without a restart:\n{}", proxy.logs());
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &token(&key, &issuer, "bob")).status, 200);
    assert_eq!(proxy.metric("portcullis_issuer_ready{issuer=\"sso\"}"), Some(1.0));
}

#[test]
fn malformed_oversized_and_hanging_key_documents_never_become_keys() {
    let upstream = Upstream::start("api");
    let key = TestKey::rsa("rsa-1");
    // Garbage from the start: not ready, and counted as invalid.
    let keys = KeyServer::start(jwks(&[&key]));
    keys.set_mode(KeyServerMode::Garbage);
    let proxy = start(&config_with(&keys.issuer(), &upstream, None), false);
    let counted = wait_until(Duration::from_secs(5), || {
        proxy.metric("portcullis_jwks_fetches_total{issuer=\"sso\",result=\"invalid\"}").unwrap_or(0.0) >= 1.0
    });
    assert!(counted);
    assert_eq!(proxy.admin_get("/readyz").status, 503);

    // Oversized: a JWKS padded past the response limit.
    let mut big: serde_json::Value = serde_json::from_str(&jwks(&[&key])).unwrap();
    big["padding"] = "x".repeat(600 * 1024).into();
    keys.set_jwks(big.to_string());
    keys.set_mode(KeyServerMode::Serve);
    let counted = wait_until(Duration::from_secs(5), || {
        proxy.metric("portcullis_jwks_fetches_total{issuer=\"sso\",result=\"too_large\"}").unwrap_or(0.0) >= 1.0
    });
    assert!(counted, "{}", proxy.metrics());
    assert_eq!(proxy.admin_get("/readyz").status, 503);

    // Unsupported entries next to a good key are skipped, not fatal.
    let mut mixed: serde_json::Value = serde_json::from_str(&jwks(&[&key])).unwrap();
    let entries = mixed["keys"].as_array_mut().unwrap();
    entries.insert(0, serde_json::json!({"kty": "quantum", "kid": "q"}));
    entries.insert(0, serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}));
    keys.set_jwks(mixed.to_string());
    assert!(wait_until(Duration::from_secs(6), || proxy.admin_get("/readyz").status == 200));
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &token(&key, &keys.issuer(), "alice")).status, 200);
    assert_eq!(proxy.metric("portcullis_jwks_keys{issuer=\"sso\"}"), Some(1.0));
}

#[test]
fn a_hanging_idp_times_out_instead_of_holding_requests() {
    let upstream = Upstream::start("api");
    let key = TestKey::rsa("rsa-1");
    let keys = KeyServer::start(jwks(&[&key]));
    keys.set_mode(KeyServerMode::Hang);
    let proxy = start(&config_with(&keys.issuer(), &upstream, None), false);
    let started = std::time::Instant::now();
    let r = get_with_token(proxy.addr, "/todos/1", &token(&key, &keys.issuer(), "alice"));
    assert_eq!(r.status, 503);
    // http_timeout is 2 s in the fixture: the answer comes well before the
    // client's own 15 s timeout.
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    let timeouts = wait_until(Duration::from_secs(6), || {
        proxy.metric("portcullis_jwks_fetches_total{issuer=\"sso\",result=\"timeout\"}").unwrap_or(0.0) >= 1.0
    });
    assert!(timeouts, "{}", proxy.metrics());
}

#[test]
fn max_age_shortens_the_refresh_interval_within_bounds() {
    let upstream = Upstream::start("api");
    let key = TestKey::rsa("rsa-1");
    let keys = KeyServer::start(jwks(&[&key]));
    keys.set_max_age(Some(0));
    let _proxy = start(&config_with(&keys.issuer(), &upstream, Some("10m")), true);
    let before = keys.jwks_hits();
    std::thread::sleep(Duration::from_millis(3500));
    let during = keys.jwks_hits() - before;
    // max-age=0 is clamped to min_refresh_interval (1 s): about 3 fetches,
    // never a tight loop, and more than the 10 minutes jwks_refresh allows.
    assert!((2..=5).contains(&during), "{during} fetches in 3.5 s");
}
