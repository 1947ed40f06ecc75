//! TLS on `listen`, with certificates made at test time by `openssl`:
//! `curl --cacert` over HTTP/1.1 and HTTP/2 (ALPN), SNI choosing the
//! certificate, TLS 1.1 refused, the redirect listener, a certificate
//! renewed under continuous load (no failed request, the new one served
//! afterwards), a bad new key that keeps the old certificate, and `check`
//! on expired, expiring and mismatched certificates.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::certs::{serial_of, served_serial, Ca, Leaf};
use harness::fixtures::{hs_issuers, hs_token, HS_ENV, HS_SECRET};
use harness::proxy::{run_cli, Proxy, ProxyOptions};
use harness::servers::Upstream;
use harness::wait_until;

const DAY: i64 = 86_400;

fn config(upstream: &Upstream, dir: &Path, redirect: Option<u16>) -> String {
    let redirect = redirect.map_or(String::new(), |port| format!("  redirect_listen: \"127.0.0.1:{port}\"\n"));
    format!(
        r#"threads: 2
tls:
  cert: "{dir}/server.crt"
  key: "{dir}/server.key"
  certificates:
    - cert: "{dir}/other.crt"
      key: "{dir}/other.key"
      names: ["other.test", "*.wild.test"]
{redirect}upstreams:
  api:
    url: "{upstream}"
{issuers}identity_headers:
  X-Auth-Subject: sub
routes:
  - path: /api/**
    scopes: ["tasks:read"]
  - path: /public/**
    public: true
"#,
        dir = dir.display(),
        upstream = upstream.url(),
        issuers = hs_issuers(),
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    ca: Ca,
    upstream: Upstream,
    proxy: Proxy,
    certs: std::path::PathBuf,
}

fn setup(redirect: Option<u16>) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let ca = Ca::new(dir.path());
    ca.issue(&certs, "server", &["localhost", "127.0.0.1"], -60, 90 * DAY);
    ca.issue(&certs, "other", &["other.test", "*.wild.test"], -60, 90 * DAY);
    let upstream = Upstream::start("api");
    let config = config(&upstream, &certs, redirect);
    let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &[(HS_ENV, HS_SECRET)], wait_ready: true });
    Setup { _dir: dir, ca, upstream, proxy, certs }
}

/// `curl` over TLS trusting only the test CA: (HTTP version, status), or
/// curl's exit code as the status when it failed.
fn curl(s: &Setup, host: &str, path: &str, extra: &[&str]) -> (String, String) {
    let port = s.proxy.addr.port();
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--max-time", "5", "--cacert"])
        .arg(&s.ca.cert)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().unwrap_or(-1);
    let (version, status) = text.split_once(' ').unwrap_or(("", ""));
    if code != 0 {
        return (version.to_owned(), format!("curl exit {code}"));
    }
    (version.to_owned(), status.to_owned())
}

#[test]
fn https_with_alpn_h2_and_http1_and_identity_headers() {
    let s = setup(None);
    let auth = format!("Authorization: Bearer {}", hs_token("alice", "tasks:read"));
    assert_eq!(curl(&s, "localhost", "/api/x", &["--http2", "-H", &auth]), ("2".into(), "200".into()));
    // The upstream learns the client's scheme: building a link or a cookie
    // for `http` behind a TLS listener would downgrade the client.
    assert_eq!(s.upstream.last().header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(curl(&s, "localhost", "/api/x", &["--http1.1", "-H", &auth]), ("1.1".into(), "200".into()));
    assert_eq!(s.upstream.last().header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(s.upstream.last().header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(curl(&s, "localhost", "/api/x", &[]).1, "401");
    // Plain HTTP on the TLS port is not served.
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3"])
        .arg(format!("http://{}/public/x", s.proxy.addr))
        .output()
        .expect("curl");
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
}

#[test]
fn sni_picks_the_certificate() {
    let s = setup(None);
    // Each name verifies against its own certificate (curl checks the
    // name), and the serial shows which one was served.
    assert_eq!(curl(&s, "other.test", "/public/x", &[]).1, "200");
    assert_eq!(curl(&s, "a.wild.test", "/public/x", &[]).1, "200");
    assert_eq!(curl(&s, "localhost", "/public/x", &[]).1, "200");
    let other = serial_of(&s.certs.join("other.crt"));
    let server = serial_of(&s.certs.join("server.crt"));
    assert_eq!(served_serial(s.proxy.addr, "other.test"), other);
    assert_eq!(served_serial(s.proxy.addr, "x.wild.test"), other);
    // No match (or one label too many): the default certificate.
    assert_eq!(served_serial(s.proxy.addr, "a.b.wild.test"), server);
    assert_eq!(served_serial(s.proxy.addr, "unknown.test"), server);
}

#[test]
fn tls_1_1_is_refused_1_2_and_1_3_accepted_and_min_version_1_3_refuses_1_2() {
    let s = setup(None);
    let handshake = |version: &str| {
        // SECLEVEL=0 lets the client offer TLS 1.1: the refusal must be
        // the server's.
        let script = format!(
            "openssl s_client -connect {} -servername localhost {version} -cipher 'DEFAULT@SECLEVEL=0' </dev/null",
            s.proxy.addr
        );
        Command::new("sh").args(["-c", &script]).output().expect("openssl").status.success()
    };
    assert!(!handshake("-tls1_1"), "TLS 1.1 must be refused");
    assert!(!handshake("-tls1"), "TLS 1.0 must be refused");
    assert!(handshake("-tls1_2"));
    assert!(handshake("-tls1_3"));

    // min_version "1.3", by a reload: TLS 1.2 is refused from then on.
    let text = config(&s.upstream, &s.certs, None).replace("tls:\n", "tls:\n  min_version: \"1.3\"\n");
    s.proxy.rewrite_config(&text);
    assert!(wait_until(Duration::from_secs(10), || !handshake("-tls1_2")), "TLS 1.2 refused:\n{}", s.proxy.logs());
    assert!(handshake("-tls1_3"));
    assert_eq!(curl(&s, "localhost", "/public/x", &["--tlsv1.3"]).1, "200");
}

#[test]
fn the_redirect_listener_sends_plain_http_to_https() {
    let port = harness::free_port_block(1);
    let s = setup(Some(port));
    let listening = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect_timeout(&harness::loopback(port), Duration::from_millis(200)).is_ok()
    });
    assert!(listening, "the redirect listener is up:\n{}", s.proxy.logs());
    // The harness client names the redirect listener's own host and port
    // in Host: the answer keeps the host, with the HTTPS port.
    let response = harness::client::request(harness::loopback(port), "GET", "/api/x?y=1", &[], b"");
    assert_eq!(response.status, 308);
    let expected = format!("https://127.0.0.1:{}/api/x?y=1", s.proxy.addr.port());
    assert_eq!(response.header("location"), Some(expected.as_str()));
    assert_eq!(s.upstream.count(), 0, "nothing is proxied in clear");
}

#[test]
fn a_renewed_certificate_is_served_without_a_failed_request() {
    let s = setup(None);
    let old = serial_of(&s.certs.join("server.crt"));
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, sent, failures) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failures));
            let (cacert, port) = (s.ca.cert.clone(), s.proxy.addr.port());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A new connection each time: each handshake picks the
                    // certificate in force.
                    let output = Command::new("curl")
                        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert"])
                        .arg(&cacert)
                        .arg(format!("https://localhost:{port}/public/x"))
                        .output()
                        .expect("curl");
                    let status = String::from_utf8_lossy(&output.stdout).into_owned();
                    if status != "200" {
                        failures.lock().expect("failures").push(format!("{status} ({:?})", output.status.code()));
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(10), || sent.load(Ordering::Relaxed) >= 20), "the load started");

    // Renewal the way cert-manager and Kubernetes Secrets do it: new files
    // written next to the old, then moved into place.
    let staging = s.certs.join("staging");
    std::fs::create_dir_all(&staging).expect("staging");
    let Leaf { cert, key } = s.ca.issue(&staging, "server", &["localhost", "127.0.0.1"], -60, 180 * DAY);
    let new = serial_of(&cert);
    assert_ne!(new, old);
    std::fs::rename(&key, s.certs.join("server.key")).expect("move key");
    std::fs::rename(&cert, s.certs.join("server.crt")).expect("move cert");
    let served = wait_until(Duration::from_secs(10), || served_serial(s.proxy.addr, "localhost") == new);
    assert!(served, "the renewed certificate is served:\n{}", s.proxy.logs());
    let after = sent.load(Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(10), || sent.load(Ordering::Relaxed) >= after + 20));
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().expect("load thread");
    }
    let failures = failures.lock().expect("failures");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        sent.load(Ordering::Relaxed)
    );
}

#[test]
fn a_bad_new_key_keeps_the_certificate_in_force() {
    let s = setup(None);
    let old = serial_of(&s.certs.join("server.crt"));
    let failed = || s.proxy.metric("portcullis_config_reloads_total{result=\"failure\"}").unwrap_or(0.0);
    let before = failed();
    // A key from another certificate: it does not match.
    let stray = s.ca.issue(&s.certs, "stray", &["localhost"], -60, DAY);
    std::fs::copy(&stray.key, s.certs.join("server.key")).expect("copy key");
    assert!(wait_until(Duration::from_secs(10), || failed() > before), "the reload failed:\n{}", s.proxy.logs());
    let logs = s.proxy.logs();
    assert!(logs.contains("the key does not match the certificate"), "{logs}");
    assert!(logs.contains(&s.certs.join("server.key").display().to_string()), "the file is named:\n{logs}");
    assert_eq!(served_serial(s.proxy.addr, "localhost"), old);
    assert_eq!(curl(&s, "localhost", "/public/x", &[]).1, "200");
}

#[test]
fn check_names_expired_expiring_and_mismatched_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path());
    let upstream = Upstream::start("api");
    let write = |name: &str| {
        let config = config(&upstream, dir.path(), None);
        let path = dir.path().join(name);
        std::fs::write(&path, format!("listen: \"127.0.0.1:8443\"\n{config}")).expect("config");
        path
    };
    let check = |path: &Path| {
        let (code, out, err) = run_cli(&["check", "-c", &path.display().to_string()], &[(HS_ENV, HS_SECRET)]);
        (code, format!("{out}{err}"))
    };
    ca.issue(dir.path(), "other", &["other.test"], -60, 90 * DAY);

    // Expired: an error naming the file, at the `tls:` entry's position.
    ca.issue(dir.path(), "server", &["localhost"], -10 * DAY, -DAY);
    let path = write("expired.yaml");
    let (code, out) = check(&path);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{}:4:3:", path.display())), "position of the tls entry: {out}");
    assert!(out.contains("the certificate expired"), "{out}");

    // Expiring within 14 days: a warning, still valid.
    ca.issue(dir.path(), "server", &["localhost"], -60, 3 * DAY);
    let (code, out) = check(&write("soon.yaml"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning") && out.contains("the certificate expires in "), "{out}");

    // A key that is not the certificate's.
    ca.issue(dir.path(), "server", &["localhost"], -60, 90 * DAY);
    let stray = ca.issue(dir.path(), "stray", &["localhost"], -60, DAY);
    std::fs::copy(&stray.key, dir.path().join("other.key")).expect("copy key");
    let (code, out) = check(&write("mismatch.yaml"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the key does not match the certificate"), "{out}");

    // An unreadable file is a configuration error with its position.
    std::fs::remove_file(dir.path().join("other.crt")).expect("remove");
    let (code, out) = check(&write("missing.yaml"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot read the certificate file"), "{out}");
}

/// Towards an `https://` upstream (here another portcullis with the test
/// CA's certificate): verified against `ca_file`, refused (502) against the
/// system roots, and `tls_verify: false` only when asked, with a warning.
#[test]
fn https_upstreams_are_verified_against_the_configured_ca() {
    let s = setup(None);
    let front = |extra: &str| {
        let config = format!(
            "threads: 2\nupstreams:\n  secure:\n    url: \"https://127.0.0.1:{port}\"\n{extra}routes:\n  - path: /public/**\n    upstream: secure\n    public: true\n",
            port = s.proxy.addr.port(),
        );
        Proxy::start_with(ProxyOptions { config: &config, env: &[], wait_ready: true })
    };
    let trusted = front(&format!("    ca_file: \"{}\"\n", s.ca.cert.display()));
    let answer = harness::client::get(trusted.addr, "/public/through", &[]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(s.upstream.last().target, "/public/through");

    let system_roots = front("");
    assert_eq!(harness::client::get(system_roots.addr, "/public/x", &[]).status, 502);

    let unverified = front("    tls_verify: false\n");
    assert_eq!(harness::client::get(unverified.addr, "/public/x", &[]).status, 200);
    let (code, out, _) = run_cli(&["check", "-c", &unverified.config_path.display().to_string()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tls_verify: false: the upstream's certificate is not checked"), "{out}");
}
