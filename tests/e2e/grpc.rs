//! HTTP/2 and gRPC: `h2c: true` on the plain listener (HTTP/1.1 still
//! served), an HTTP/2 upstream (`http2: true`), and a real gRPC client and
//! server (Python `grpcio`) through portcullis: unary and server-streaming
//! calls with a token, and every refusal seen by the client as the gRPC
//! status it stands for, with the challenge kept.

use std::process::Command;

use harness::fixtures::{hs_issuers, hs_token, HS_ENV, HS_SECRET};
use harness::grpc::{call, GrpcServer};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::Upstream;

fn config(grpc: &GrpcServer, api: &Upstream) -> String {
    format!(
        r#"threads: 2
h2c: true
upstreams:
  grpc:
    url: "http://{grpc}"
    http2: true
  down:
    url: "http://127.0.0.1:9"
    http2: true
    connect_timeout: 500ms
  api:
    url: "{api}"
{issuers}identity_headers:
  X-Auth-Subject: sub
  X-Auth-Scopes: scopes
rate_limits:
  two:
    key: client_ip
    limit: 2
    per: 1m
    burst: 2
routes:
  - path: /todo.Todos/Get
    upstream: grpc
    methods: [POST]
    scopes: ["tasks:read"]
  - path: /todo.Todos/List
    upstream: grpc
    methods: [POST]
    scopes: ["tasks:list"]
  - path: /todo.Limited/**
    upstream: grpc
    rate_limit: two
    scopes: ["tasks:read"]
  - path: /todo.Down/**
    upstream: down
    scopes: ["tasks:read"]
  - path: /api/**
    upstream: api
    scopes: ["tasks:read"]
"#,
        grpc = grpc.addr,
        api = api.url(),
        issuers = hs_issuers(),
    )
}

fn start(grpc: &GrpcServer, api: &Upstream) -> Proxy {
    let config = config(grpc, api);
    Proxy::start_with(ProxyOptions { config: &config, env: &[(HS_ENV, HS_SECRET)], wait_ready: true })
}

#[test]
fn grpc_calls_go_through_with_a_token_unary_and_streaming() {
    let (grpc, api) = (GrpcServer::start(), Upstream::start("api"));
    let proxy = start(&grpc, &api);
    let reader = hs_token("alice", "tasks:read tasks:list");

    let unary = call(proxy.addr, "/todo.Todos/Get", Some(&reader), false);
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["messages"][0]["echo"], "hello");
    assert_eq!(unary["messages"][0]["identity"]["x-auth-subject"], "alice", "{unary}");

    let stream = call(proxy.addr, "/todo.Todos/List", Some(&reader), true);
    assert_eq!(stream["code"], "OK", "{stream}");
    let messages = stream["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "{stream}");
    assert!(messages.iter().enumerate().all(|(n, m)| m["n"] == n && m["identity"]["x-auth-subject"] == "alice"));
}

#[test]
fn each_refusal_is_the_grpc_status_it_stands_for() {
    let (grpc, api) = (GrpcServer::start(), Upstream::start("api"));
    let proxy = start(&grpc, &api);
    let reader = hs_token("alice", "tasks:read");

    let missing = call(proxy.addr, "/todo.Todos/Get", None, false);
    assert_eq!(missing["code"], "UNAUTHENTICATED", "{missing}");
    // The access line says which gRPC status the HTTP 200 carried.
    let logged = harness::wait_until(std::time::Duration::from_secs(2), || {
        proxy.logs().lines().any(|l| l.contains("/todo.Todos/Get") && l.contains("grpc_status=\"16\""))
    });
    assert!(logged, "no access line with grpc_status=\"16\":\n{}", proxy.logs());
    assert_eq!(missing["details"], "a bearer token is required");
    // Trailers-only: the challenge arrives with the status.
    let challenge = missing["trailing"]["www-authenticate"].as_str().unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm="), "{missing}");

    let forged = format!("{}x", &reader[..reader.len() - 1]);
    let invalid = call(proxy.addr, "/todo.Todos/Get", Some(&forged), false);
    assert_eq!(invalid["code"], "UNAUTHENTICATED", "{invalid}");
    assert!(invalid["trailing"]["www-authenticate"].as_str().unwrap_or_default().contains("invalid_token"));

    let scope = call(proxy.addr, "/todo.Todos/List", Some(&reader), true);
    assert_eq!(scope["code"], "PERMISSION_DENIED", "{scope}");
    assert!(scope["trailing"]["www-authenticate"].as_str().unwrap_or_default().contains("insufficient_scope"));

    let limited: Vec<String> = (0..3)
        .map(|_| call(proxy.addr, "/todo.Limited/Get", Some(&reader), false)["code"].as_str().unwrap_or("").to_owned())
        .collect();
    // The upstream has no such service: the first two are answered by it.
    assert_eq!(limited, ["UNIMPLEMENTED", "UNIMPLEMENTED", "RESOURCE_EXHAUSTED"]);

    let down = call(proxy.addr, "/todo.Down/Get", Some(&reader), false);
    assert_eq!(down["code"], "UNAVAILABLE", "{down}");
    // Counted under the decisions they stand for, like any refusal (the
    // access record is written just after the answer).
    for decision in ["unauthenticated", "invalid_token", "insufficient_scope", "rate_limited", "upstream_error"] {
        let counted = harness::wait_until(std::time::Duration::from_secs(2), || {
            proxy.metrics().contains(&format!("decision=\"{decision}\""))
        });
        assert!(counted, "{decision} not counted:\n{}", proxy.metrics());
    }
}

/// `curl --http2-prior-knowledge` (h2c) and plain HTTP/1.1 on the same
/// port; the HTTP/1.1 upstream gets the request with its host.
#[test]
fn h2c_and_http1_share_the_listener() {
    let (grpc, api) = (GrpcServer::start(), Upstream::start("api"));
    let proxy = start(&grpc, &api);
    let token = hs_token("alice", "tasks:read");
    for flag in ["--http2-prior-knowledge", "--http1.1"] {
        let output = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", flag])
            .args(["-H", &format!("Authorization: Bearer {token}"), "-H", "X-Auth-Subject: root"])
            .arg(format!("http://{}/api/items", proxy.addr))
            .output()
            .expect("curl");
        let seen = String::from_utf8_lossy(&output.stdout).into_owned();
        let version = if flag == "--http1.1" { "1.1" } else { "2" };
        assert_eq!(seen, format!("{version} 200"), "{flag}");
        let received = api.last();
        assert_eq!(received.target, "/api/items");
        assert_eq!(received.header("x-auth-subject").as_deref(), Some("alice"), "{flag}: spoofed header dropped");
        assert_eq!(received.header("host"), Some(proxy.addr.to_string()), "{flag}");
    }
    // Without a token, HTTP/2 gets the same 401 as HTTP/1.1.
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge"])
        .arg(format!("http://{}/api/items", proxy.addr))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "401");
}

/// gRPC-Web (browsers, over HTTP/1.1): a refusal is the same trailers-only
/// answer in gRPC-Web's media type, so the client library reports the
/// status and message instead of an HTTP error with a JSON body.
#[test]
fn grpc_web_refusals_are_in_grpc_web_form() {
    let (grpc, api) = (GrpcServer::start(), Upstream::start("api"));
    let proxy = start(&grpc, &api);
    let reader = hs_token("alice", "tasks:read");
    let forged = format!("Bearer {}x", &reader[..reader.len() - 1]);
    let empty_message = b"\0\0\0\0\0";
    for (media, answered) in [
        ("application/grpc-web+proto", "application/grpc-web+proto"),
        ("application/grpc-web", "application/grpc-web+proto"),
        ("application/grpc-web-text", "application/grpc-web-text+proto"),
    ] {
        let headers = [("content-type", media), ("x-grpc-web", "1")];
        let missing = harness::client::request(proxy.addr, "POST", "/todo.Todos/Get", &headers, empty_message);
        assert_eq!(missing.status, 200, "{media}: {}", missing.text());
        assert_eq!(missing.header("content-type"), Some(answered), "{media}");
        assert_eq!(missing.header("grpc-status"), Some("16"), "{media}");
        assert_eq!(missing.header("grpc-message"), Some("a bearer token is required"), "{media}");
        assert!(missing.header("www-authenticate").unwrap_or_default().starts_with("Bearer realm="), "{media}");
        assert_eq!(missing.header("content-length"), Some("0"), "{media}");
        assert!(missing.body.is_empty(), "{media}: {}", missing.text());

        let headers = [("content-type", media), ("authorization", forged.as_str())];
        let invalid = harness::client::request(proxy.addr, "POST", "/todo.Todos/Get", &headers, empty_message);
        assert_eq!(invalid.header("grpc-status"), Some("16"), "{media}");
        assert!(invalid.header("www-authenticate").unwrap_or_default().contains("invalid_token"), "{media}");
    }
}
