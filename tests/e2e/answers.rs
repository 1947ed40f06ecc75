//! Every row of DESIGN.md's "answers on the wire" table, against the real binary.

use std::time::Duration;

use harness::client::{get, get_with_token, request, send_raw};
use harness::config::TestConfig;
use harness::fixtures::{hs_token, standard_config, World, AUDIENCE};
use harness::keys::{claims, jwks, TestKey};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::{Behaviour, KeyServer, Upstream};
use harness::{free_port, now};

#[test]
fn public_route_is_proxied_without_client_identity_headers() {
    let w = World::start();
    let r = get(w.proxy.addr, "/healthz", &[("X-Auth-Subject", "root"), ("x-auth-scopes", "admin")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = w.upstream.last();
    assert_eq!(seen.target, "/healthz");
    assert_eq!(seen.header("x-auth-subject"), None);
    assert_eq!(seen.header("x-auth-scopes"), None);
}

#[test]
fn protected_route_without_a_token_is_401_with_a_plain_challenge() {
    let w = World::start();
    let r = get(w.proxy.addr, "/todos/1", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"test-api\""));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "unauthorized");
    // Another scheme counts as no bearer token.
    let r = get(w.proxy.addr, "/todos/1", &[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"test-api\""));
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn two_authorization_headers_or_an_empty_token_is_400_invalid_request() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    let bearer = format!("Bearer {token}");
    let r = get(w.proxy.addr, "/todos/1", &[("Authorization", &bearer), ("Authorization", &bearer)]);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"test-api\", error=\"invalid_request\""));
    assert_eq!(r.json()["error"], "invalid_request");
    for value in ["Bearer", "Bearer ", "Bearer a b"] {
        let r = get(w.proxy.addr, "/todos/1", &[("Authorization", value)]);
        assert_eq!(r.status, 400, "{value:?}");
    }
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn a_valid_token_is_forwarded_and_the_scheme_is_case_insensitive() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = get(w.proxy.addr, "/todos/7", &[("Authorization", &format!("{scheme} {token}"))]);
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    assert_eq!(w.upstream.count(), 3);
}

#[test]
fn invalid_tokens_are_401_invalid_token_with_a_description() {
    let w = World::start();
    let other_key = TestKey::rsa("rsa-1-impostor");
    let mut expired = w.claims("alice", "tasks:read");
    expired["exp"] = (now() - 3600).into();
    let mut early = w.claims("alice", "tasks:read");
    early["nbf"] = (now() + 3600).into();
    let wrong_iss = claims("https://elsewhere.example.com", AUDIENCE, "alice", "tasks:read");
    let mut wrong_aud = w.claims("alice", "tasks:read");
    wrong_aud["aud"] = "another-api".into();
    let impostor = other_key.with_kid("rsa-1");
    let cases = [
        ("bad signature", impostor.sign(&w.claims("alice", "tasks:read")), "signature"),
        ("expired", w.rsa.sign(&expired), "expired"),
        ("not yet valid", w.rsa.sign(&early), "not valid yet"),
        ("wrong iss", w.rsa.sign(&wrong_iss), "issuer"),
        ("wrong aud", w.rsa.sign(&wrong_aud), "audience"),
        (
            "alg not allowed",
            TestKey::rsa_with("rsa-1", jsonwebtoken::Algorithm::RS512).sign(&w.claims("a", "")),
            "algorithm",
        ),
        ("unknown kid", other_key.sign(&w.claims("alice", "tasks:read")), "unknown key"),
        ("malformed", "not-a-jwt.at-all.x".to_owned(), "malformed"),
    ];
    for (case, token, expected) in cases {
        let r = get_with_token(w.proxy.addr, "/todos/1", &token);
        assert_eq!(r.status, 401, "{case}: {}", r.text());
        let challenge = r.header("www-authenticate").unwrap_or_default().to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"test-api\", error=\"invalid_token\", error_description=\""),
            "{case}: {challenge}"
        );
        let description = r.json()["error_description"].as_str().unwrap_or_default().to_owned();
        assert!(description.contains(expected), "{case}: {description}");
        assert!(challenge.contains(&description), "{case}: challenge and body agree");
        assert_eq!(r.json()["error"], "invalid_token");
    }
    assert_eq!(w.upstream.count(), 0, "nothing invalid was forwarded");
}

#[test]
fn a_token_over_the_size_limit_is_401_invalid_token() {
    let w = World::start_with("tokens:\n  max_bytes: 2048\n");
    let mut big = w.claims("alice", "tasks:read");
    big["padding"] = "x".repeat(3000).into();
    let r = get_with_token(w.proxy.addr, "/todos/1", &w.rsa.sign(&big));
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap_or_default().contains("error=\"invalid_token\""));
    assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("too large"));
}

#[test]
fn a_valid_token_lacking_a_scope_is_403_insufficient_scope() {
    let w = World::start();
    let reader = w.token("alice", "tasks:read");
    let r = request(w.proxy.addr, "POST", "/todos", &[("Authorization", &format!("Bearer {reader}"))], b"{}");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"test-api\", error=\"insufficient_scope\", scope=\"tasks:write\"")
    );
    assert_eq!(r.json()["error"], "insufficient_scope");
    let r = get_with_token(w.proxy.addr, "/admin/users", &reader);
    assert_eq!(r.status, 403);
    assert!(r.header("www-authenticate").unwrap_or_default().contains("scope=\"admin superuser\""));
    // One of any_scopes is enough.
    let r = get_with_token(w.proxy.addr, "/admin/users", &w.token("root", "superuser"));
    assert_eq!(r.status, 200);
    assert_eq!(w.upstream.count(), 1);
}

#[test]
fn no_route_is_401_without_a_valid_token_and_403_with_one() {
    let w = World::start();
    let r = get(w.proxy.addr, "/nowhere", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"test-api\""));
    let r = get_with_token(w.proxy.addr, "/nowhere", "garbage.token.here");
    assert_eq!(r.status, 401);
    let r = get_with_token(w.proxy.addr, "/nowhere", &w.token("alice", "tasks:read admin"));
    assert_eq!(r.status, 403);
    // A method no route allows is also unrouted.
    let r = request(
        w.proxy.addr,
        "OPTIONS",
        "/todos/1",
        &[("Authorization", &format!("Bearer {}", w.token("a", "tasks:read")))],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn ambiguous_paths_are_400_and_never_forwarded() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    let bearer = format!("Bearer {token}");
    for target in [
        "/todos/../admin",
        "/todos/./1",
        "/todos/%2e%2e/admin",
        "/todos%2f1",
        "/todos%5c1",
        "/todos/1%00",
        "/todos/%ff",
        "/todos/%c0%ae%c0%ae/admin",
        "/todos/%252e%252e/admin",
        "/todos;x=1/1",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n");
        let r = send_raw(w.proxy.addr, raw.as_bytes()).expect("response");
        assert_eq!(r.status, 400, "{target}: {}", r.text());
    }
    assert_eq!(w.upstream.count(), 0);
}

#[test]
fn rate_limit_exceeded_is_429_with_retry_after() {
    let upstream = Upstream::start("api");
    let keys = KeyServer::start(jwks(&[&TestKey::rsa("rsa-1")]));
    let config = TestConfig::new(&keys.issuer(), &upstream.url())
        .rate_limit("tight", "{key: client_ip, limit: 2, per: 1m}")
        .route_option("/public/**", "rate_limit", "tight")
        .render();
    let proxy = Proxy::start(&config);
    assert_eq!(get(proxy.addr, "/public/login", &[]).status, 200);
    assert_eq!(get(proxy.addr, "/public/login", &[]).status, 200);
    let r = get(proxy.addr, "/public/login", &[]);
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.json()["error"], "rate_limited");
    assert_eq!(upstream.count(), 2);
}

#[test]
fn an_issuer_without_keys_since_start_is_503_with_retry_after() {
    let upstream = Upstream::start("api");
    // Nothing listens here: the IdP is unreachable from the start.
    let dead_issuer = format!("http://127.0.0.1:{}", free_port());
    let config = standard_config(&dead_issuer, &upstream.url(), "");
    let proxy = Proxy::start_with(ProxyOptions {
        config: &config,
        env: &[(harness::fixtures::HS_ENV, harness::fixtures::HS_SECRET)],
        wait_ready: false,
    });
    let token = TestKey::rsa("rsa-1").sign(&claims(&dead_issuer, AUDIENCE, "alice", "tasks:read"));
    let r = get_with_token(proxy.addr, "/todos/1", &token);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    // The other issuer is unaffected.
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &hs_token("bob", "tasks:read")).status, 200);
    let ready = proxy.admin_get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("sso"), "{}", ready.text());
}

#[test]
fn upstream_unreachable_is_502_and_timed_out_is_504() {
    let upstream = Upstream::start("api");
    let keys = KeyServer::start(jwks(&[&TestKey::rsa("rsa-1")]));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = standard_config(&keys.issuer(), &dead, "");
    let proxy = Proxy::start(&config);
    let r = get(proxy.addr, "/healthz", &[]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "bad_gateway");

    let config = TestConfig::new(&keys.issuer(), &upstream.url()).upstream_option("read_timeout", "300ms").render();
    let proxy = Proxy::start(&config);
    upstream.set_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    let r = get(proxy.addr, "/healthz", &[]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"], "gateway_timeout");
}

#[test]
fn tokens_in_the_query_string_are_refused_unless_configured() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    let r = get(w.proxy.addr, &format!("/todos/1?access_token={token}"), &[]);
    assert_eq!(r.status, 401);

    let w = World::start_with("tokens:\n  query_parameter: access_token\n");
    let token = w.token("alice", "tasks:read");
    let r = get(w.proxy.addr, &format!("/todos/1?a=1&access_token={token}&b=2"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // The token does not travel on to the upstream.
    assert_eq!(w.upstream.last().target, "/todos/1?a=1&b=2");
    // Header and query at once is two methods: 400.
    let r =
        get(w.proxy.addr, &format!("/todos/1?access_token={token}"), &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(r.status, 400);
}
