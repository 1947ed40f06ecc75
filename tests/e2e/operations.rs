//! Operating it: metrics (checked by promtool), health and readiness, hot
//! reload under load, logs that never leak secrets, graceful shutdown.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::client::{get, get_with_token, request, send_raw};
use harness::config::TestConfig;
use harness::fixtures::{hs_token, World, HS_ENV, HS_SECRET};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::{Behaviour, Upstream};
use harness::wait_until;

fn reloads(proxy: &Proxy, result: &str) -> f64 {
    proxy.metric(&format!("portcullis_config_reloads_total{{result=\"{result}\"}}")).unwrap_or(0.0)
}

#[test]
fn metrics_after_real_traffic_pass_promtool_and_cover_the_contract() {
    let w = World::start_with("rate_limits:\n  login:\n    key: client_ip\n    limit: 1\n    per: 1m\n");
    let token = w.token("alice", "tasks:read");
    assert_eq!(get_with_token(w.proxy.addr, "/todos/1", &token).status, 200);
    assert_eq!(get_with_token(w.proxy.addr, "/todos/1", &token).status, 200);
    assert_eq!(get(w.proxy.addr, "/todos/1", &[]).status, 401);
    assert_eq!(get_with_token(w.proxy.addr, "/admin/x", &token).status, 403);
    assert_eq!(get_with_token(w.proxy.addr, "/todos/1", "x.y.z").status, 401);
    assert_eq!(get(w.proxy.addr, "/healthz", &[]).status, 200);
    let raw = "GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(send_raw(w.proxy.addr, raw.as_bytes()).unwrap().status, 400);

    // Metrics are recorded in the logging phase, just after the response.
    let settled = wait_until(Duration::from_secs(5), || {
        w.proxy.metrics().contains("portcullis_requests_total{decision=\"bad_request\",route=\"(none)\"} 1")
    });
    assert!(settled, "{}", w.proxy.metrics());
    let text = w.proxy.metrics();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package 'prometheus') must be installed");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    for series in [
        "portcullis_requests_total{decision=\"allow\",route=\"GET /todos/**\"} 2",
        "portcullis_requests_total{decision=\"unauthenticated\",route=\"GET /todos/**\"} 1",
        "portcullis_requests_total{decision=\"insufficient_scope\",route=\"/admin/**\"} 1",
        "portcullis_requests_total{decision=\"invalid_token\",route=\"GET /todos/**\"} 1",
        "portcullis_requests_total{decision=\"public\",route=\"/healthz\"} 1",
        "portcullis_requests_total{decision=\"bad_request\",route=\"(none)\"} 1",
        "portcullis_upstream_responses_total{class=\"2xx\",upstream=\"api\"} 3",
        "portcullis_jwks_fetches_total{issuer=\"sso\",result=\"ok\"} 1",
        "portcullis_jwks_keys{issuer=\"sso\"} 1",
        "portcullis_token_cache_hits_total 2",
        "portcullis_token_cache_entries 1",
        "portcullis_config_reloads_total{result=\"success\"} 1",
        "portcullis_rate_limit_keys{limit=\"login\"} 0",
    ] {
        assert!(text.contains(series), "missing {series}\n{text}");
    }
    for family in [
        "portcullis_request_duration_seconds_bucket{route=\"GET /todos/**\",le=",
        "portcullis_auth_duration_seconds_bucket{source=\"cache\",le=",
        "portcullis_auth_duration_seconds_bucket{source=\"verify\",le=",
        "portcullis_config_last_reload_success_timestamp_seconds ",
        "# TYPE portcullis_rate_limit_rejections_total counter",
    ] {
        assert!(text.contains(family), "missing {family}\n{text}");
    }
    // Labels are bounded: no raw path, subject or token ever becomes one.
    assert!(!text.contains("alice") && !text.contains("/todos/1") && !text.contains(&token[..20]));
}

#[test]
fn health_and_readiness() {
    let w = World::start();
    let health = w.proxy.admin_get("/healthz");
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let ready = w.proxy.admin_get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(w.proxy.admin_get("/nope").status, 404);
    assert_eq!(request(w.proxy.admin, "POST", "/metrics", &[], b"").status, 405);
}

const POLICY_A: &str = "  - path: /a\n    public: true\n";
const POLICY_B: &str = "  - path: /b\n    public: true\n";

fn policy(upstream: &Upstream, routes: &str) -> String {
    format!("threads: 2\nupstreams:\n  api:\n    url: \"{}\"\nroutes:\n{routes}", upstream.url())
}

#[test]
fn fifty_reloads_under_load_lose_no_request() {
    let upstream = Upstream::start("api");
    let proxy = Proxy::start(&policy(&upstream, POLICY_A));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let (stop, errors, sent, addr) = (Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&sent), proxy.addr);
            std::thread::spawn(move || {
                let target = if n % 2 == 0 { "/a" } else { "/b" };
                let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                while !stop.load(Ordering::Relaxed) {
                    match send_raw(addr, raw.as_bytes()) {
                        // Under A, /a is public and /b unrouted (401); under B the reverse.
                        Ok(r) if r.status == 200 || r.status == 401 => {}
                        Ok(r) => errors.lock().unwrap().push(format!("{target}: status {}", r.status)),
                        Err(e) => errors.lock().unwrap().push(format!("{target}: {e}")),
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for n in 1..=50 {
        let next = if n % 2 == 1 { POLICY_B } else { POLICY_A };
        if n == 25 {
            // A broken file in the middle changes nothing.
            proxy.rewrite_config(&policy(&upstream, "  - path: /a\n    public: maybe\n"));
            assert!(wait_until(Duration::from_secs(5), || reloads(&proxy, "failure") == 1.0), "{}", proxy.logs());
        }
        proxy.rewrite_config(&policy(&upstream, next));
        if n % 5 == 0 {
            // Some by signal too (after the file write settles).
            std::thread::sleep(Duration::from_millis(300));
            proxy.signal(1);
        }
        let expected = f64::from(n) + 1.0 + f64::from(n / 5);
        let applied = wait_until(Duration::from_secs(5), || reloads(&proxy, "success") >= expected);
        assert!(applied, "reload {n} did not apply:\n{}", proxy.logs());
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} errors of {} requests: {:?}",
        errors.len(),
        sent.load(Ordering::Relaxed),
        &errors[..errors.len().min(10)]
    );
    assert!(sent.load(Ordering::Relaxed) > 200, "the load kept going: {}", sent.load(Ordering::Relaxed));
    assert_eq!(reloads(&proxy, "failure"), 1.0);
    // The last policy (A after 50 alternations) is in force.
    assert_eq!(get(proxy.addr, "/a", &[]).status, 200);
    assert_eq!(get(proxy.addr, "/b", &[]).status, 401);
}

#[test]
fn a_bad_file_keeps_the_running_policy_and_names_file_line_and_column() {
    let upstream = Upstream::start("api");
    let proxy = Proxy::start(&policy(&upstream, POLICY_A));
    proxy.rewrite_config(&policy(&upstream, "  - path: /a\n    methods: [get]\n"));
    let counts = || {
        format!("reloads: {} ok, {} failed\n{}", reloads(&proxy, "success"), reloads(&proxy, "failure"), proxy.logs())
    };
    assert!(wait_until(Duration::from_secs(5), || reloads(&proxy, "failure") == 1.0), "{}", counts());
    assert_eq!(get(proxy.addr, "/a", &[]).status, 200, "old policy still in force");
    let logs = proxy.logs();
    // Line 9: the harness puts `listen` and `admin_listen` first.
    let position = format!("{}:9:15: methods are case-sensitive", proxy.config_path.display());
    assert!(logs.contains(&position), "{position}\n{logs}");

    // A later good file applies.
    proxy.rewrite_config(&policy(&upstream, POLICY_B));
    assert!(wait_until(Duration::from_secs(5), || reloads(&proxy, "success") == 2.0), "{}", counts());
    assert_eq!(get(proxy.addr, "/b", &[]).status, 200);
    let stamp = proxy.metric("portcullis_config_last_reload_success_timestamp_seconds").unwrap();
    assert!(stamp > harness::now() as f64 - 60.0);
}

#[test]
fn a_new_policy_file_matching_the_glob_is_picked_up() {
    let upstream = Upstream::start("api");
    let config = format!("{}policy_files: [\"policies/*.yaml\"]\n", policy(&upstream, POLICY_A));
    let proxy = Proxy::start(&config);
    assert_eq!(get(proxy.addr, "/b", &[]).status, 401);
    proxy.write_file("policies/20-b.yaml", &format!("routes:\n{POLICY_B}"));
    assert!(wait_until(Duration::from_secs(5), || get(proxy.addr, "/b", &[]).status == 200), "{}", proxy.logs());
    // Editing the policy file (by rename) applies too.
    proxy.write_file("policies/20-b.yaml", "routes:\n  - path: /c\n    public: true\n");
    assert!(wait_until(Duration::from_secs(5), || get(proxy.addr, "/c", &[]).status == 200));
    assert_eq!(get(proxy.addr, "/b", &[]).status, 401);
}

#[test]
fn requests_in_flight_finish_on_the_policy_they_started_with() {
    let upstream = Upstream::start("api");
    upstream.set_behaviour(Behaviour::Delay(Duration::from_millis(1500)));
    let proxy = Proxy::start(&policy(&upstream, POLICY_A));
    let addr = proxy.addr;
    let slow = std::thread::spawn(move || get(addr, "/a", &[]).status);
    assert!(wait_until(Duration::from_secs(3), || upstream.count() == 1));
    proxy.rewrite_config(&policy(&upstream, POLICY_B));
    assert!(wait_until(Duration::from_secs(5), || reloads(&proxy, "success") == 2.0));
    assert_eq!(slow.join().unwrap(), 200, "the request admitted under A completed");
    upstream.set_behaviour(Behaviour::Echo);
    assert_eq!(get(proxy.addr, "/a", &[]).status, 401, "new requests see B");
}

#[test]
fn jwks_caches_of_unchanged_issuers_survive_a_reload() {
    let w = World::start();
    let before = w.keys.jwks_hits();
    let config = TestConfig::new(&w.keys.issuer(), &w.upstream.url()).realm("other").render();
    w.proxy.rewrite_config(&config);
    assert!(wait_until(Duration::from_secs(5), || reloads(&w.proxy, "success") == 2.0));
    assert_eq!(get_with_token(w.proxy.addr, "/todos/1", &w.token("alice", "tasks:read")).status, 200);
    assert_eq!(w.keys.jwks_hits(), before, "no new JWKS fetch for an unchanged issuer");
    assert_eq!(w.keys.discovery_hits(), 1);
}

#[test]
fn tokens_authorization_cookies_and_secrets_never_reach_the_logs() {
    let upstream = Upstream::start("api");
    let keys = harness::servers::KeyServer::start(harness::keys::jwks(&[&harness::keys::TestKey::rsa("rsa-1")]));
    for (level, format) in [("debug", "json"), ("trace", "human")] {
        let config = TestConfig::new(&keys.issuer(), &upstream.url())
            .main_option("log_level", level)
            .main_option("log_format", format)
            .extra("tokens:\n  query_parameter: access_token\n")
            .render();
        let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &[(HS_ENV, HS_SECRET)], wait_ready: true });
        let token = hs_token("alice", "tasks:read");
        let bad = format!("{}x", &token[..token.len() - 1]);
        let cookie = "session=cookie-value-that-must-not-leak";
        for t in [&token, &bad] {
            let r = get(proxy.addr, "/todos/1", &[("Authorization", &format!("Bearer {t}")), ("Cookie", cookie)]);
            assert!(r.status == 200 || r.status == 401);
        }
        assert_eq!(get(proxy.addr, &format!("/todos/1?access_token={token}"), &[("Cookie", cookie)]).status, 200);
        let started = Instant::now();
        let logs = loop {
            let logs = proxy.logs();
            if logs.matches("portcullis::access").count() >= 3 || started.elapsed() > Duration::from_secs(5) {
                break logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(logs.matches("portcullis::access").count() >= 3, "{level}: access lines\n{logs}");
        for secret in [&token[..], &bad[..], &token[token.len() - 20..], "cookie-value-that-must-not-leak", HS_SECRET] {
            assert!(!logs.contains(secret), "{level}/{format}: the logs contain a secret ({secret:.12}...)");
        }
        assert!(!logs.to_ascii_lowercase().contains("bearer "), "{level}: an Authorization value was logged");
    }
}

#[test]
fn access_lines_carry_the_contract_fields_as_json() {
    let w = World::start();
    let config = TestConfig::new(&w.keys.issuer(), &w.upstream.url()).main_option("log_format", "json").render();
    let proxy = Proxy::start(&config);
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &w.token("alice", "tasks:read")).status, 200);
    assert!(wait_until(Duration::from_secs(5), || proxy.logs().contains("portcullis::access")));
    let line =
        proxy.logs().lines().find(|l| l.contains("portcullis::access")).map(str::to_owned).expect("an access line");
    let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["client"], "127.0.0.1");
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/todos/1");
    assert_eq!(json["route"], "GET /todos/**");
    assert_eq!(json["decision"], "allow");
    assert_eq!(json["status"], 200);
    assert_eq!(json["subject"], "alice");
    assert_eq!(json["issuer"], "sso");
    assert!(json["latency_ms"].as_str().and_then(|l| l.parse::<f64>().ok()).is_some(), "{line}");
}

#[test]
fn sigterm_drains_requests_in_flight_then_exits_0() {
    let upstream = Upstream::start("api");
    upstream.set_behaviour(Behaviour::Delay(Duration::from_millis(1500)));
    let config = format!("{}shutdown:\n  grace_period: 10s\n", policy(&upstream, POLICY_A));
    let mut proxy = Proxy::start(&config);
    let addr = proxy.addr;
    let slow = std::thread::spawn(move || get(addr, "/a", &[]).status);
    assert!(wait_until(Duration::from_secs(3), || upstream.count() == 1));
    let signalled = Instant::now();
    proxy.signal(15);
    // No new connections once draining.
    let refused = wait_until(Duration::from_secs(2), || std::net::TcpStream::connect(addr).is_err());
    assert!(refused, "the listener closes on SIGTERM");
    assert_eq!(slow.join().unwrap(), 200, "the request in flight completed");
    let status = proxy.wait_exit(Duration::from_secs(12)).expect("exits within the grace period");
    assert!(status.success(), "{status}\n{}", proxy.logs());
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(6), "exits once drained, not after the whole grace period: {took:?}");
}

#[test]
fn sigterm_with_nothing_in_flight_exits_promptly() {
    let upstream = Upstream::start("api");
    let mut proxy = Proxy::start(&policy(&upstream, POLICY_A));
    assert_eq!(get(proxy.addr, "/a", &[]).status, 200);
    let signalled = Instant::now();
    proxy.signal(15);
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success());
    assert!(signalled.elapsed() < Duration::from_secs(3), "{:?}", signalled.elapsed());
}
