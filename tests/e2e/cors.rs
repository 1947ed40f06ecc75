//! CORS against the real binary: preflights answered by the proxy and never
//! forwarded, the headers of every answer (the upstream's and the proxy's
//! own 401/403/429), the upstream's CORS headers replaced, a route that
//! turns CORS off, subdomain patterns, the decision labels, and a real
//! browser (headless Chromium) calling the API from an allowed origin and
//! from another.

use std::time::Duration;

use harness::browser::PageServer;
use harness::client::{request, Response};
use harness::config::TestConfig;
use harness::fixtures::World;

const APP: &str = "https://app.example.com";

/// The standard world with a main-file CORS policy for `APP` and
/// `https://*.partners.example.com`.
fn world(configure: impl FnOnce(TestConfig) -> TestConfig) -> World {
    World::start_configured(|config| {
        configure(config.extra(&format!(
            "cors:\n  allow_origins: [\"{APP}\", \"https://*.partners.example.com\"]\n  allow_methods: [GET, PUT, \
             DELETE]\n  allow_headers: [Authorization, Content-Type]\n  expose_headers: [X-Request-Id]\n  \
             allow_credentials: true\n  max_age: 10m\n"
        )))
    })
}

fn preflight(world: &World, path: &str, origin: &str, method: &str, headers: &str) -> Response {
    let mut sent = vec![("Origin", origin), ("Access-Control-Request-Method", method)];
    if !headers.is_empty() {
        sent.push(("Access-Control-Request-Headers", headers));
    }
    request(world.proxy.addr, "OPTIONS", path, &sent, b"")
}

fn all<'r>(response: &'r Response, name: &str) -> Vec<&'r str> {
    response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

fn cors_headers(response: &Response) -> Vec<&str> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn a_preflight_from_an_allowed_origin_is_answered_here_without_a_token() {
    let w = world(|c| c);
    let answer = preflight(&w, "/todos/1", APP, "PUT", "authorization, content-type");
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert_eq!(all(&answer, "access-control-allow-origin"), [APP]);
    assert_eq!(answer.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(answer.header("access-control-allow-methods"), Some("GET, PUT, DELETE"));
    assert_eq!(answer.header("access-control-allow-headers"), Some("authorization, content-type"));
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert!(answer.header("vary").is_some_and(|v| v.contains("Origin")), "{:?}", answer.headers);
    assert!(answer.body.is_empty());
    // Routed for the method it asks about (`/todos/**` has a PUT-only
    // route), and never forwarded.
    let other = preflight(&w, "/admin/x", "https://api.partners.example.com", "DELETE", "");
    assert_eq!(other.status, 204);
    assert_eq!(w.upstream.count(), 0, "a preflight reached the upstream");
    let metrics = w.proxy.metrics();
    assert!(
        metrics
            .contains("portcullis_requests_total{decision=\"preflight\",route=\"POST,PUT,PATCH,DELETE /todos/**\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_preflight_the_policy_does_not_allow_gets_403_and_no_cors_header() {
    let w = world(|c| c);
    for (origin, method, headers, why) in [
        ("https://evil.example", "PUT", "", "origin"),
        ("https://app.example.com.evil.net", "PUT", "", "origin"),
        ("https://partners.example.com", "PUT", "", "origin"),
        ("null", "PUT", "", "origin"),
        (APP, "PATCH", "", "method"),
        (APP, "PUT", "authorization, x-evil", "header"),
    ] {
        let answer = preflight(&w, "/todos/1", origin, method, headers);
        assert_eq!(answer.status, 403, "{origin} {method} {headers}: {}", answer.text());
        assert_eq!(answer.json()["error"], "cors_refused");
        assert!(answer.json()["error_description"].as_str().unwrap().contains(why), "{}", answer.text());
        assert!(cors_headers(&answer).is_empty(), "{origin}: {:?}", answer.headers);
    }
    assert_eq!(w.upstream.count(), 0);
    assert!(w.proxy.metrics().contains("decision=\"cors_refused\""));
}

#[test]
fn answers_carry_the_exact_origin_and_the_upstreams_cors_headers_are_replaced() {
    let w = world(|c| c);
    let token = w.token("alice", "tasks:read");
    let authorization = format!("Bearer {token}");
    let ok = request(
        w.proxy.addr,
        "GET",
        "/todos/1",
        &[
            ("Authorization", &authorization),
            ("Origin", APP),
            ("X-Test-Response-Header", "Access-Control-Allow-Origin: *"),
            ("X-Test-Response-Header", "Access-Control-Allow-Methods: PATCH"),
            ("X-Test-Response-Header", "Vary: Accept-Encoding"),
        ],
        b"",
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(all(&ok, "access-control-allow-origin"), [APP]);
    assert!(all(&ok, "access-control-allow-methods").is_empty(), "{:?}", ok.headers);
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-expose-headers"), Some("x-request-id"));
    assert_eq!(all(&ok, "vary"), ["Accept-Encoding", "Origin"]);

    // Another origin: the request is still decided by the policy (CORS is
    // not access control), but the browser gets nothing to read, not even
    // the upstream's `*`.
    let other = request(
        w.proxy.addr,
        "GET",
        "/todos/1",
        &[
            ("Authorization", &authorization),
            ("Origin", "https://evil.example"),
            ("X-Test-Response-Header", "Access-Control-Allow-Origin: *"),
        ],
        b"",
    );
    assert_eq!(other.status, 200);
    assert!(cors_headers(&other).is_empty(), "{:?}", other.headers);
    assert_eq!(all(&other, "vary"), ["Origin"]);
}

#[test]
fn the_proxys_own_refusals_are_readable_by_an_allowed_origin() {
    let w = world(|c| {
        c.rate_limit("one", "{key: client_ip, limit: 1, per: 1m}").route_option("/public/**", "rate_limit", "one")
    });
    let from_app = [("Origin", APP)];
    let missing = request(w.proxy.addr, "GET", "/todos/1", &from_app, b"");
    assert_eq!(missing.status, 401);
    assert_eq!(all(&missing, "access-control-allow-origin"), [APP]);
    let exposed = missing.header("access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("www-authenticate") && exposed.contains("x-request-id"), "{exposed}");
    assert!(missing.header("www-authenticate").is_some());

    let reader = format!("Bearer {}", w.token("alice", "tasks:read"));
    let scope = request(w.proxy.addr, "PUT", "/todos/1", &[("Origin", APP), ("Authorization", &reader)], b"");
    assert_eq!(scope.status, 403);
    assert_eq!(all(&scope, "access-control-allow-origin"), [APP]);

    assert_eq!(request(w.proxy.addr, "GET", "/public/a", &from_app, b"").status, 200);
    let limited = request(w.proxy.addr, "GET", "/public/a", &from_app, b"");
    assert_eq!(limited.status, 429);
    assert_eq!(all(&limited, "access-control-allow-origin"), [APP]);
    assert!(limited.header("access-control-expose-headers").is_some_and(|v| v.contains("retry-after")));

    // No route: the main file's policy still applies.
    let nowhere = request(w.proxy.addr, "GET", "/nowhere", &[("Origin", APP), ("Authorization", &reader)], b"");
    assert_eq!(nowhere.status, 403);
    assert_eq!(all(&nowhere, "access-control-allow-origin"), [APP]);
    // Another origin's refusal says nothing to its script.
    let evil = request(w.proxy.addr, "GET", "/todos/1", &[("Origin", "https://evil.example")], b"");
    assert_eq!(evil.status, 401);
    assert!(cors_headers(&evil).is_empty(), "{:?}", evil.headers);
}

#[test]
fn a_route_can_turn_cors_off_or_set_its_own_policy() {
    let w = world(|c| {
        c.route_option("/admin/**", "cors", "{allow_origins: []}").route_option(
            "/public/**",
            "cors",
            "{allow_origins: [\"https://docs.example.com\"], allow_methods: [GET]}",
        )
    });
    // Off: the preflight is an ordinary OPTIONS (here: no token, 401), and
    // the upstream's own CORS headers pass untouched.
    let off = preflight(&w, "/admin/x", APP, "GET", "");
    assert_eq!(off.status, 401);
    assert!(cors_headers(&off).is_empty(), "{:?}", off.headers);
    let admin = format!("Bearer {}", w.token("root", "admin"));
    let passed = request(
        w.proxy.addr,
        "GET",
        "/admin/x",
        &[("Authorization", &admin), ("Origin", APP), ("X-Test-Response-Header", "Access-Control-Allow-Origin: *")],
        b"",
    );
    assert_eq!(all(&passed, "access-control-allow-origin"), ["*"]);

    // Its own: only its origin, not the main file's.
    assert_eq!(preflight(&w, "/public/a", "https://docs.example.com", "GET", "").status, 204);
    assert_eq!(preflight(&w, "/public/a", APP, "GET", "").status, 403);
}

#[test]
fn check_refuses_unsafe_cors_settings_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    let config = TestConfig::new("https://sso.example.com", "http://127.0.0.1:9")
        .extra("cors:\n  allow_origins: [\"*\", \"null\", \"https://app.example.com/\"]\n  allow_credentials: true\n  allow_headers: [\"*\"]\n")
        .render();
    std::fs::write(&path, &config).unwrap();
    let (code, stdout, stderr) = harness::proxy::run_cli(&["check", "--config", path.to_str().unwrap()], &[]);
    let output = format!("{stdout}{stderr}");
    assert_ne!(code, 0, "{output}");
    let line = config.lines().position(|l| l.contains("allow_origins")).unwrap() + 1;
    let file = path.display();
    assert!(output.contains(&format!("{file}:{line}:")), "{output}");
    assert!(output.contains("'null' is the origin of sandboxed documents"), "{output}");
    assert!(output.contains("no path, query"), "{output}");
    assert!(output.contains("'*' never covers Authorization"), "{output}");
}

#[test]
fn explain_shows_a_routes_cors_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    let config = TestConfig::new("https://sso.example.com", "http://127.0.0.1:9")
        .extra(&format!("cors:\n  allow_origins: [\"{APP}\"]\n  allow_methods: [GET, PUT]\n"))
        .render();
    std::fs::write(&path, &config).unwrap();
    let (code, stdout, stderr) =
        harness::proxy::run_cli(&["explain", "--config", path.to_str().unwrap(), "PUT", "/todos/1"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("cors: origins {APP}; methods GET, PUT")), "{stdout}");
}

/// The page the browser opens: a preflighted `PUT` with a bearer token, and
/// one without, to the proxy; it reports what the browser let it read.
fn page(proxy: &str, token: &str) -> String {
    format!(
        r#"<!doctype html><title>cors</title><script>
const report = (result) => fetch("/report", {{method: "POST", body: JSON.stringify(result)}});
const call = (headers) => fetch("{proxy}/todos/1", {{method: "PUT", credentials: "include",
    headers: Object.assign({{"Content-Type": "application/json"}}, headers), body: "{{}}"}})
  .then(r => r.text().then(body => ({{status: r.status, body,
      challenge: r.headers.get("www-authenticate")}})))
  .catch(e => ({{error: String(e)}}));
Promise.all([call({{"Authorization": "Bearer {token}"}}), call({{}})])
  .then(([withToken, without]) => report({{withToken, without}}));
</script>"#
    )
}

#[test]
fn a_browser_on_an_allowed_origin_calls_the_api_and_another_origin_cannot() {
    // The page's server first: its origin goes into the policy, and the
    // page (which needs the proxy's address and a token) comes after.
    let server = PageServer::start();
    let allowed = format!("http://127.0.0.1:{}", server.addr.port());
    let w = World::start_configured(|c| {
        c.extra(&format!(
            "cors:\n  allow_origins: [\"{allowed}\"]\n  allow_methods: [GET, PUT]\n  allow_credentials: true\n"
        ))
    });
    server.set_page(page(&format!("http://{}", w.proxy.addr), &w.token("alice", "tasks:write")));

    let report = server.open(&format!("{allowed}/"), Duration::from_secs(60));
    assert_eq!(report["withToken"]["status"], 200, "{report}");
    assert!(report["withToken"]["body"].as_str().unwrap().contains("\"method\":\"PUT\""), "{report}");
    // The refusal is readable, challenge included.
    assert_eq!(report["without"]["status"], 401, "{report}");
    assert!(report["without"]["challenge"].as_str().is_some_and(|c| c.starts_with("Bearer")), "{report}");
    let puts = || w.upstream.received().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts(), 1, "the upstream should see exactly the authorised PUT");
    assert!(w.upstream.received().iter().all(|r| r.method != "OPTIONS"), "a preflight was forwarded");

    // `localhost` is another origin than `127.0.0.1` to the browser: its
    // preflight is refused, so neither PUT is sent.
    let report = server.open(&format!("http://localhost:{}/", server.addr.port()), Duration::from_secs(60));
    assert!(report["withToken"]["error"].as_str().is_some(), "{report}");
    assert!(report["without"]["error"].as_str().is_some(), "{report}");
    assert_eq!(puts(), 1, "a PUT from a refused origin reached the upstream");
}
