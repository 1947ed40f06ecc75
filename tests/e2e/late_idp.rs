//! An IdP that comes up after the proxy (compose and Kubernetes do not
//! order start-up): while an issuer has never had keys the proxy retries
//! within a moment, not one `min_refresh_interval` later, and its 503
//! answers say truthfully when to ask again.

use std::time::{Duration, Instant};

use harness::client::get_with_token;
use harness::config::TestConfig;
use harness::fixtures::{AUDIENCE, HS_ENV, HS_SECRET};
use harness::keys::{claims, jwks, TestKey};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::{KeyServer, Upstream};
use harness::{free_port_block, wait_until};

#[test]
fn a_replica_is_ready_within_moments_of_its_idp_coming_up_late() {
    let upstream = Upstream::start("api");
    let key = TestKey::rsa("rsa-1");
    // Nothing listens on the key server's port yet.
    let port = free_port_block(1);
    let issuer = format!("http://127.0.0.1:{port}");
    // 30 s (the default): before the fix, the first retry came that late.
    let config = TestConfig::new(&issuer, &upstream.url()).issuer_option("min_refresh_interval", "30s").render();
    let started = Instant::now();
    let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &[(HS_ENV, HS_SECRET)], wait_ready: false });
    // The IdP comes up a second after the proxy (the measurement):
    // a few backoff steps have passed by then.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));

    assert_eq!(proxy.admin_get("/readyz").status, 503);
    let token = |sub: &str| key.sign(&claims(&issuer, AUDIENCE, sub, "tasks:read"));
    let refused = get_with_token(proxy.addr, "/todos/1", &token("alice"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    let retry_after: u64 =
        refused.header("retry-after").expect("Retry-After").parse().expect("Retry-After in whole seconds");
    // The next attempt is a backoff step away (250 ms doubling), not 30 s.
    assert!((1..=3).contains(&retry_after), "Retry-After: {retry_after}");

    let _keys = KeyServer::start_on(port, jwks(&[&key]));
    let up = Instant::now();
    let ready = wait_until(Duration::from_secs(2), || proxy.admin_get("/readyz").status == 200);
    let time_to_ready = up.elapsed();
    eprintln!("key server up {:?} after the proxy started; ready {time_to_ready:?} after that", up - started);
    assert!(ready, "not ready 2 s after the IdP came up:\n{}", proxy.logs());
    let accepted = get_with_token(proxy.addr, "/todos/1", &token("bob"));
    assert_eq!(accepted.status, 200, "{}", accepted.text());
}
