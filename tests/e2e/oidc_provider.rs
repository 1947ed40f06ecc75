//! Against a real OpenID provider (`oidc-provider` from npm): discovery,
//! JWKS, JWT access tokens from the client-credentials grant, and RFC 7662
//! introspection of opaque tokens.

use std::time::Duration;

use harness::client::get_with_token;
use harness::oidc::{OidcProvider, OPAQUE_API, OTHER_API, TODO_API, TODO_API_ES256};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::Upstream;
use harness::wait_until;

const INTROSPECTION_SECRET_ENV: &str = "TEST_INTROSPECTION_SECRET";

fn config(provider: &OidcProvider, upstream: &Upstream, extra_issuer: &str) -> String {
    format!(
        r#"threads: 2
upstreams:
  api:
    url: "{upstream}"
issuers:
  - name: idp
    issuer: "{issuer}"
    audiences: ["todo-api", "opaque-api"]
    algorithms: ["RS256", "ES256"]
    token_types: ["at+jwt"]
    min_refresh_interval: 1s
{extra_issuer}
identity_headers:
  X-Auth-Subject: sub
  X-Auth-Scopes: scopes
  X-Auth-Client: client_id
routes:
  - path: /todos/**
    methods: [GET]
    scopes: [tasks:read]
  - path: /todos/**
    methods: [POST]
    scopes: [tasks:write]
  - path: /admin/**
    scopes: [admin]
"#,
        upstream = upstream.url(),
        issuer = provider.issuer,
    )
}

fn start(provider: &OidcProvider, upstream: &Upstream, extra_issuer: &str) -> Proxy {
    let config = config(provider, upstream, extra_issuer);
    Proxy::start_with(ProxyOptions {
        config: &config,
        env: &[(INTROSPECTION_SECRET_ENV, harness::oidc::CLIENT_SECRET)],
        wait_ready: true,
    })
}

#[test]
fn provider_tokens_are_accepted_with_identity_headers() {
    let provider = OidcProvider::start();
    let upstream = Upstream::start("api");
    let proxy = start(&provider, &upstream, "");

    let token = provider.token(TODO_API, "tasks:read");
    let r = get_with_token(proxy.addr, "/todos/1", &token);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some(harness::oidc::CLIENT_ID));
    assert_eq!(seen.header("x-auth-client").as_deref(), Some(harness::oidc::CLIENT_ID));
    assert_eq!(seen.header("x-auth-scopes").as_deref(), Some("tasks:read"));

    // A second signing key and algorithm of the same provider.
    let es = provider.token(TODO_API_ES256, "tasks:read tasks:write");
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &es).status, 200);
    assert_eq!(upstream.last().header("x-auth-scopes").as_deref(), Some("tasks:read tasks:write"));
}

#[test]
fn a_provider_token_lacking_the_scope_is_403() {
    let provider = OidcProvider::start();
    let upstream = Upstream::start("api");
    let proxy = start(&provider, &upstream, "");
    let token = provider.token(TODO_API, "tasks:read");
    let r =
        harness::client::request(proxy.addr, "POST", "/todos", &[("Authorization", &format!("Bearer {token}"))], b"");
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .unwrap_or_default()
        .contains("error=\"insufficient_scope\", scope=\"tasks:write\""));
    assert_eq!(get_with_token(proxy.addr, "/admin/x", &token).status, 403);
    assert_eq!(upstream.count(), 0);
}

#[test]
fn tokens_from_another_issuer_or_for_another_audience_are_401() {
    let provider = OidcProvider::start();
    let stranger = OidcProvider::start();
    let upstream = Upstream::start("api");
    let proxy = start(&provider, &upstream, "");
    // Same software, same client, different issuer.
    let foreign = stranger.token(TODO_API, "tasks:read");
    let r = get_with_token(proxy.addr, "/todos/1", &foreign);
    assert_eq!(r.status, 401);
    assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("issuer"));
    // Right issuer, wrong audience.
    let other = provider.token(OTHER_API, "tasks:read");
    let r = get_with_token(proxy.addr, "/todos/1", &other);
    assert_eq!(r.status, 401);
    assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("audience"));
    assert_eq!(upstream.count(), 0);
}

#[test]
fn opaque_tokens_are_checked_by_introspection_and_cached() {
    let provider = OidcProvider::start();
    let upstream = Upstream::start("api");
    let introspection = format!(
        "    introspection:\n      client_id: {}\n      client_secret_env: {INTROSPECTION_SECRET_ENV}\n      max_ttl: 2s\n      negative_ttl: 30s\n",
        harness::oidc::CLIENT_ID
    );
    let proxy = start(&provider, &upstream, &introspection);
    let active = |result: &str| {
        proxy
            .metric(&format!("portcullis_introspection_requests_total{{issuer=\"idp\",result=\"{result}\"}}"))
            .unwrap_or(0.0)
    };

    let token = provider.token(OPAQUE_API, "tasks:read");
    assert!(!token.contains('.'), "an opaque token: {token}");
    let r = get_with_token(proxy.addr, "/todos/1", &token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(upstream.last().header("x-auth-scopes").as_deref(), Some("tasks:read"));
    assert_eq!(upstream.last().header("x-auth-subject").as_deref(), Some(harness::oidc::CLIENT_ID));
    // Cached: no second call to the IdP.
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &token).status, 200);
    assert_eq!(active("active"), 1.0);

    // After revocation the cached answer lasts at most max_ttl.
    provider.revoke(&token);
    let refused = wait_until(Duration::from_secs(8), || get_with_token(proxy.addr, "/todos/1", &token).status == 401);
    assert!(refused, "a revoked token stops working once its cache entry expires");

    // Unknown opaque tokens are inactive, and remembered as such.
    for _ in 0..5 {
        let r = get_with_token(proxy.addr, "/todos/1", "not-a-token-the-idp-issued");
        assert_eq!(r.status, 401);
        assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("not active"));
    }
    assert_eq!(active("inactive"), 2.0, "one call for the revoked token, one for the unknown one");
}
