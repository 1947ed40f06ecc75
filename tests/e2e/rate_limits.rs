//! Rate limits on auth paths, against the real binary.

use std::time::Duration;

use harness::client::{get, request, Response};
use harness::config::TestConfig;
use harness::fixtures::World;
use harness::keys::{jwks, TestKey};
use harness::proxy::Proxy;
use harness::servers::{KeyServer, Upstream};

/// A rate limit: its name and its settings as a flow mapping.
type Limit = (&'static str, &'static str);

/// The standard world plus `limits`, with `login_limits` on a public
/// `/login` route and `user_limits` on a protected `/me` route.
fn start(
    limits: &[Limit],
    login_limits: &str,
    user_limits: &str,
    trusted: &str,
) -> (Upstream, KeyServer, TestKey, Proxy) {
    let upstream = Upstream::start("api");
    let key = TestKey::rsa("rsa-1");
    let keys = KeyServer::start(jwks(&[&key]));
    let config = limits
        .iter()
        .fold(TestConfig::new(&keys.issuer(), &upstream.url()), |config, (name, settings)| {
            config.rate_limit(name, settings)
        })
        .main_option("trusted_proxies", &format!("[{trusted}]"))
        .leading_route(&[("path", "/login"), ("public", "true"), ("rate_limit", &format!("[{login_limits}]"))])
        .leading_route(&[("path", "/me"), ("rate_limit", &format!("[{user_limits}]"))])
        .render();
    let proxy = Proxy::start(&config);
    (upstream, keys, key, proxy)
}

fn login(proxy: &Proxy, client: Option<&str>, body: &str) -> Response {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(ip) = client {
        headers.push(("X-Forwarded-For", ip));
    }
    request(proxy.addr, "POST", "/login", &headers, body.as_bytes())
}

const PER_IP: Limit = ("per-ip", "{key: client_ip, limit: 3, per: 1m}");
const PER_USER: Limit = ("per-user", "{key: \"form:username\", limit: 2, per: 1m}");

#[test]
fn a_burst_is_served_then_429_with_retry_after_and_ratelimit_headers() {
    let (upstream, _k, _key, proxy) = start(&[PER_IP], "per-ip", "per-ip", "");
    for _ in 0..3 {
        assert_eq!(login(&proxy, None, "username=a").status, 200);
    }
    let r = login(&proxy, None, "username=a");
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-policy"), Some("\"per-ip\";q=3;w=60"));
    assert_eq!(r.header("ratelimit"), Some(format!("\"per-ip\";r=0;t={retry}").as_str()));
    assert_eq!(r.json()["error"], "rate_limited");
    assert_eq!(upstream.count(), 3, "the refused request never reached the upstream");
    assert_eq!(proxy.metric("portcullis_rate_limit_rejections_total{limit=\"per-ip\"}"), Some(1.0));
    assert_eq!(proxy.metric("portcullis_rate_limit_keys{limit=\"per-ip\"}"), Some(1.0));
}

#[test]
fn the_bucket_refills_after_the_period() {
    let limits = [("fast", "{key: client_ip, limit: 2, per: 1s}")];
    let (_u, _k, _key, proxy) = start(&limits, "fast", "fast", "");
    assert_eq!(login(&proxy, None, "").status, 200);
    assert_eq!(login(&proxy, None, "").status, 200);
    assert_eq!(login(&proxy, None, "").status, 429);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(login(&proxy, None, "").status, 200);
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Untrusted: rotating X-Forwarded-For does not escape the limit.
    let (_u, _k, _key, proxy) = start(&[PER_IP], "per-ip", "per-ip", "");
    let statuses: Vec<u16> = (0..5).map(|n| login(&proxy, Some(&format!("198.51.100.{n}")), "").status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    // Trusted loopback proxy: the right-most untrusted address is the client,
    // and one limited client does not affect another.
    let (_u, _k, _key, proxy) = start(&[PER_IP], "per-ip", "per-ip", "\"127.0.0.0/8\", \"10.0.0.0/8\"");
    for _ in 0..3 {
        assert_eq!(login(&proxy, Some("203.0.113.7, 10.1.2.3"), "").status, 200);
    }
    assert_eq!(login(&proxy, Some("198.51.100.1, 203.0.113.7, 10.9.9.9"), "").status, 429);
    assert_eq!(login(&proxy, Some("203.0.113.8"), "").status, 200, "another client");
    // A spoofed left-most entry is not the client either.
    assert_eq!(login(&proxy, Some("192.0.2.50, 203.0.113.7"), "").status, 429);
    assert_eq!(proxy.metric("portcullis_rate_limit_keys{limit=\"per-ip\"}"), Some(2.0));
}

#[test]
fn a_username_limit_holds_across_many_client_addresses() {
    let (upstream, _k, _key, proxy) = start(&[PER_IP, PER_USER], "per-ip, per-user", "per-ip", "\"127.0.0.1\"");
    let mut statuses = Vec::new();
    for n in 0..4 {
        statuses.push(login(&proxy, Some(&format!("203.0.113.{n}")), "username=victim&password=guess").status);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    // JSON bodies count for the same user.
    let r = request(
        proxy.addr,
        "POST",
        "/login",
        &[("Content-Type", "application/json"), ("X-Forwarded-For", "203.0.113.99")],
        br#"{"username":"victim","password":"x"}"#,
    );
    assert_eq!(r.status, 429);
    // A decoy field in front does not steer the request away from the victim.
    assert_eq!(login(&proxy, Some("203.0.113.77"), "username=decoy-1&password=x&username=victim").status, 429);
    // Another user from a fresh address is fine.
    assert_eq!(login(&proxy, Some("203.0.113.200"), "username=someone-else").status, 200);
    // Seventeen distinct usernames in one request: refused, not 17 checks.
    let spray: Vec<String> = (0..17).map(|n| format!("username=spray-{n}")).collect();
    assert_eq!(login(&proxy, Some("203.0.113.201"), &spray.join("&")).status, 429);
    assert_eq!(upstream.count(), 3);
}

#[test]
fn the_login_body_reaches_the_upstream_byte_for_byte() {
    let (upstream, _k, _key, proxy) = start(&[PER_USER], "per-user", "per-user", "");
    let bodies: Vec<Vec<u8>> = vec![
        b"username=alice&password=p%40ss+word&remember=1".to_vec(),
        b"password=x&username=%E2%98%83&extra=%00%FF".to_vec(),
        br#"{"username":"bob","password":"s3cret","nested":{"a":[1,2,3]}}"#.to_vec(),
        b"".to_vec(),
        // Larger than the 16 KiB read-ahead: forwarded untouched, keyed by address.
        format!("username=carol&blob={}", "z".repeat(20_000)).into_bytes(),
    ];
    for body in &bodies {
        let content_type =
            if body.starts_with(b"{") { "application/json" } else { "application/x-www-form-urlencoded" };
        let r = request(proxy.addr, "POST", "/login", &[("Content-Type", content_type)], body);
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = upstream.last();
        assert_eq!(seen.body, *body, "body of {} bytes changed on the way", body.len());
        assert_eq!(seen.header("content-length"), Some(body.len().to_string()));
    }
}

#[test]
fn subject_limits_apply_per_verified_subject() {
    let limits = [("per-subject", "{key: subject, limit: 2, per: 1m}")];
    let (_u, keys, key, proxy) = start(&limits, "", "per-subject", "");
    let token = |sub: &str| key.sign(&harness::keys::claims(&keys.issuer(), "todo-api", sub, ""));
    let alice = token("alice");
    let statuses: Vec<u16> =
        (0..3).map(|_| harness::client::get_with_token(proxy.addr, "/me", &alice).status).collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(harness::client::get_with_token(proxy.addr, "/me", &token("bob")).status, 200);
    // Without a token, authentication fails before the subject limit.
    assert_eq!(get(proxy.addr, "/me", &[]).status, 401);
}

#[test]
fn limits_survive_a_reload_when_unchanged_and_restart_when_changed() {
    let (name, settings) = PER_IP;
    let w = World::start_configured(|config| config.rate_limit(name, settings));
    let limited = TestConfig::new(&w.keys.issuer(), &w.upstream.url()).rate_limit(name, settings).route_option(
        "/public/**",
        "rate_limit",
        name,
    );
    w.proxy.rewrite_config(&limited.render());
    let applied = harness::wait_until(Duration::from_secs(5), || {
        w.proxy.metric("portcullis_config_reloads_total{result=\"success\"}") == Some(2.0)
    });
    assert!(applied, "{}", w.proxy.logs());
    for _ in 0..3 {
        assert_eq!(get(w.proxy.addr, "/public/x", &[]).status, 200);
    }
    assert_eq!(get(w.proxy.addr, "/public/x", &[]).status, 429);

    // An unrelated change: the limit's state is kept.
    w.proxy.rewrite_config(&limited.clone().realm("renamed").render());
    let applied = harness::wait_until(Duration::from_secs(5), || {
        w.proxy.metric("portcullis_config_reloads_total{result=\"success\"}") == Some(3.0)
    });
    assert!(applied);
    assert_eq!(get(w.proxy.addr, "/public/x", &[]).status, 429, "still limited after the reload");

    // A changed quota is a new limiter.
    w.proxy.rewrite_config(&limited.rate_limit(name, "{key: client_ip, limit: 4, per: 1m}").render());
    let applied = harness::wait_until(Duration::from_secs(5), || {
        w.proxy.metric("portcullis_config_reloads_total{result=\"success\"}") == Some(4.0)
    });
    assert!(applied);
    assert_eq!(get(w.proxy.addr, "/public/x", &[]).status, 200);
}
