//! Several upstreams: per-route and per-host routing (gateway mode).

use harness::client::{get, get_with_token};
use harness::fixtures::{hs_token, HS_ENV, HS_SECRET};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::Upstream;

#[test]
fn routes_and_hosts_pick_the_upstream() {
    let todos = Upstream::start("todos");
    let billing = Upstream::start("billing");
    let tenant = Upstream::start("tenant");
    let config = format!(
        r#"threads: 2
upstreams:
  todos:
    url: "{}"
  billing:
    url: "{}"
  tenant:
    url: "{}"
issuers:
  - name: local
    issuer: "local-issuer"
    algorithms: ["HS256"]
    secret_env: "{HS_ENV}"
    audiences: ["todo-api"]
routes:
  - path: /**
    hosts: ["*.tenants.example.com"]
    upstream: tenant
  - path: /todos/**
    upstream: todos
    scopes: [tasks:read]
  - path: /billing/**
    hosts: ["billing.example.com"]
    upstream: billing
    scopes: [billing]
"#,
        todos.url(),
        billing.url(),
        tenant.url()
    );
    let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &[(HS_ENV, HS_SECRET)], wait_ready: true });
    let token = hs_token("alice", "tasks:read billing");
    let bearer = format!("Bearer {token}");

    assert_eq!(get_with_token(proxy.addr, "/todos/1", &token).status, 200);
    assert_eq!(todos.count(), 1);

    let r = get(proxy.addr, "/billing/invoices", &[("Authorization", &bearer), ("Host", "billing.example.com")]);
    // The harness sends its own Host first; a second Host header is refused.
    assert_eq!(r.status, 400);
    let raw = format!(
        "GET /billing/invoices HTTP/1.1\r\nHost: Billing.Example.com:8080\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    let r = harness::client::send_raw(proxy.addr, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(billing.count(), 1);

    // Wrong host for billing: no route.
    assert_eq!(get_with_token(proxy.addr, "/billing/invoices", &token).status, 403);

    let raw = "GET /anything HTTP/1.1\r\nHost: acme.tenants.example.com\r\nConnection: close\r\n\r\n";
    let r = harness::client::send_raw(proxy.addr, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 401, "tenant routes are protected too");
    let raw = format!(
        "GET /anything HTTP/1.1\r\nHost: acme.tenants.example.com\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(harness::client::send_raw(proxy.addr, raw.as_bytes()).unwrap().status, 200);
    assert_eq!(tenant.count(), 1);
    // Absolute-form targets route by their authority and go upstream in
    // origin form; one whose Host disagrees is refused outright.
    let raw = format!(
        "GET http://acme.tenants.example.com/x HTTP/1.1\r\nHost: acme.tenants.example.com\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    let r = harness::client::send_raw(proxy.addr, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tenant.count(), 2);
    assert_eq!(tenant.last().target, "/x");
    assert!(!tenant.last().absolute_form, "forwarded in origin form");
    assert_eq!(tenant.last().header("host").as_deref(), Some("acme.tenants.example.com"));
    let raw = format!(
        "GET http://acme.tenants.example.com/x HTTP/1.1\r\nHost: billing.example.com\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(harness::client::send_raw(proxy.addr, raw.as_bytes()).unwrap().status, 400);
    assert_eq!(tenant.count(), 2);
    assert_eq!(billing.count(), 1);
    assert_eq!(todos.count(), 1);
}
