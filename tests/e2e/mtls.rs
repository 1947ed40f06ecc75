//! Client certificates on `listen` (mTLS), with real clients: `curl
//! --cert` with certificates an openssl CA signs at test time. No
//! certificate, a certificate from another CA, an allowed and a disallowed
//! SPIFFE ID, a certificate alone and with a token, the certificate's
//! identity headers (client-sent ones replaced), certificate-bound tokens
//! (RFC 8705) over the right and the wrong certificate, an issuer that
//! requires them, `client_auth: required` turned on by a reload, and the
//! certificate expiry metric.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use harness::certs::{sha256_of, subject_rfc2253, Ca, Leaf};
use harness::fixtures::{hs_token, AUDIENCE, HS_ENV, HS_ISSUER, HS_SECRET};
use harness::keys::{claims, TestKey};
use harness::proxy::{run_cli, Proxy, ProxyOptions};
use harness::servers::Upstream;
use harness::wait_until;

const BOUND_ISSUER: &str = "bound-issuer";
const BILLING_SPIFFE: &str = "spiffe://cluster.local/ns/billing/sa/api";

fn config(certs: &Path, upstream: &Upstream, client_auth: &str) -> String {
    format!(
        r#"threads: 2
tls:
  cert: "{certs}/server.crt"
  key: "{certs}/server.key"
  client_ca: "{certs}/ca.crt"
  client_auth: {client_auth}
upstreams:
  api:
    url: "{upstream}"
issuers:
  - name: local
    issuer: "{HS_ISSUER}"
    secret_env: {HS_ENV}
    audiences: ["{AUDIENCE}"]
    algorithms: [HS256]
  - name: bound
    issuer: "{BOUND_ISSUER}"
    secret_env: {HS_ENV}
    audiences: ["{AUDIENCE}"]
    algorithms: [HS256]
    require_bound_tokens: true
identity_headers:
  X-Auth-Subject: sub
  X-Client-Subject: client_cert:subject
  X-Client-Id: client_cert:uri
  X-Client-Sha256: client_cert:sha256
routes:
  - path: /internal/**
    credentials: [client_cert]
    client_certs:
      uris: ["spiffe://cluster.local/ns/billing/*"]
  - path: /both/**
    scopes: ["tasks:read"]
    client_certs:
      subjects: ["O=Example,CN=billing"]
  - path: /api/**
    scopes: ["tasks:read"]
  - path: /public/**
    public: true
"#,
        certs = certs.display(),
        upstream = upstream.url(),
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    certs: PathBuf,
    upstream: Upstream,
    proxy: Proxy,
    ca: PathBuf,
    /// `CN=billing,O=Example`, SPIFFE ID of the billing service.
    billing: Leaf,
    /// Same CA, the shop's SPIFFE ID.
    shop: Leaf,
    /// Signed by a CA portcullis does not trust.
    stranger: Leaf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let ca = Ca::new(dir.path());
    std::fs::copy(&ca.cert, certs.join("ca.crt")).expect("copy CA");
    ca.issue(&certs, "server", &["localhost", "127.0.0.1"], -60, 90 * 86_400);
    let billing = ca.issue_client(&certs, "billing", "/O=Example/CN=billing", &[&format!("URI:{BILLING_SPIFFE}")]);
    let shop = ca.issue_client(&certs, "shop", "/O=Example/CN=shop", &["URI:spiffe://cluster.local/ns/shop/sa/api"]);
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("other CA dir");
    let stranger = Ca::new(&other_dir).issue_client(
        &certs,
        "stranger",
        "/O=Example/CN=billing",
        &[&format!("URI:{BILLING_SPIFFE}")],
    );
    let upstream = Upstream::start("api");
    let text = config(&certs, &upstream, "optional");
    let proxy = Proxy::start_with(ProxyOptions { config: &text, env: &[(HS_ENV, HS_SECRET)], wait_ready: true });
    Setup { ca: ca.cert.clone(), _dir: dir, certs, upstream, proxy, billing, shop, stranger }
}

/// `curl` over TLS trusting the test CA, with `cert` as the client
/// certificate: (status, body), or curl's exit code when the exchange
/// failed (a refused handshake). `headers` may hold curl options too.
fn curl(s: &Setup, cert: Option<&Leaf>, path: &str, headers: &[&str]) -> (String, String) {
    let port = s.proxy.addr.port();
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "\n%{http_code}", "--max-time", "5", "--cacert"]).arg(&s.ca);
    command.args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
    if let Some(leaf) = cert {
        command.arg("--cert").arg(&leaf.cert).arg("--key").arg(&leaf.key);
    }
    for header in headers {
        // `--http2`, `--http1.1`: curl options; anything else is a header.
        if header.starts_with("--") {
            command.arg(header);
        } else {
            command.args(["-H", header]);
        }
    }
    let output = command.arg(format!("https://localhost:{port}{path}")).output().expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return (format!("curl exit {}", output.status.code().unwrap_or(-1)), text);
    }
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    (status.to_owned(), body.to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token from `iss` bound (RFC 8705) to the certificate with `thumbprint`.
fn bound_token(iss: &str, sub: &str, thumbprint: &[u8; 32]) -> String {
    let mut payload = claims(iss, AUDIENCE, sub, "tasks:read");
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint);
    payload["cnf"] = serde_json::json!({ "x5t#S256": x5t });
    TestKey::hmac(HS_SECRET.as_bytes()).sign(&payload)
}

#[test]
fn routes_require_allowed_certificates_alone_or_with_a_token() {
    let s = setup();
    // Optional client auth: without a certificate the handshake succeeds,
    // and only routes that require one refuse.
    assert_eq!(curl(&s, None, "/public/x", &[]).0, "200");
    let (status, body) = curl(&s, None, "/internal/x", &[]);
    assert_eq!(status, "403");
    assert!(body.contains("client_certificate_required"), "{body}");

    // The billing service's SPIFFE ID: admitted by the certificate alone,
    // over HTTP/2 and HTTP/1.1 alike.
    assert_eq!(curl(&s, Some(&s.billing), "/internal/x", &["--http2"]).0, "200");
    assert_eq!(curl(&s, Some(&s.billing), "/internal/x", &["--http1.1"]).0, "200");
    // Another namespace's: refused, though the CA signed it.
    let (status, body) = curl(&s, Some(&s.shop), "/internal/x", &[]);
    assert_eq!(status, "403");
    assert!(body.contains("client_certificate_not_allowed"), "{body}");
    // Another CA's certificate with the very same names: the handshake fails.
    let (status, _) = curl(&s, Some(&s.stranger), "/public/x", &[]);
    assert!(status.starts_with("curl exit"), "a certificate from an untrusted CA must fail the handshake: {status}");

    // Certificate and token: each alone is not enough.
    let token = format!("Authorization: Bearer {}", hs_token("alice", "tasks:read"));
    assert_eq!(curl(&s, Some(&s.billing), "/both/x", &[]).0, "401");
    assert_eq!(curl(&s, None, "/both/x", &[&token]).0, "403");
    assert_eq!(curl(&s, Some(&s.shop), "/both/x", &[&token]).0, "403", "the subject is CN=shop");
    assert_eq!(curl(&s, Some(&s.billing), "/both/x", &[&token]).0, "200");
    assert_eq!(s.upstream.last().header("x-auth-subject").as_deref(), Some("alice"));

    let refused = s.proxy.metric("portcullis_requests_total{decision=\"client_cert_refused\",route=\"/internal/**\"}");
    assert_eq!(refused, Some(1.0), "{}", s.proxy.metrics());
}

#[test]
fn certificate_identity_headers_replace_what_the_client_sent() {
    let s = setup();
    let spoofed = ["X-Client-Id: spiffe://cluster.local/ns/admin/sa/root", "X-Client-Subject: CN=admin"];
    assert_eq!(curl(&s, Some(&s.billing), "/internal/x", &spoofed).0, "200");
    let received = s.upstream.last();
    assert_eq!(received.headers_named("x-client-id"), vec![BILLING_SPIFFE.to_owned()]);
    // RFC 4514, as `openssl x509 -nameopt RFC2253` writes the subject.
    assert_eq!(received.headers_named("x-client-subject"), vec![subject_rfc2253(&s.billing.cert)]);
    assert_eq!(received.header("x-client-sha256"), Some(hex(&sha256_of(&s.billing.cert))));
    // Without a certificate the spoofed values are removed, not passed on.
    assert_eq!(curl(&s, None, "/public/x", &spoofed).0, "200");
    let received = s.upstream.last();
    assert_eq!(received.header("x-client-id"), None);
    assert_eq!(received.header("x-client-subject"), None);
}

#[test]
fn bound_tokens_only_over_their_certificate() {
    let s = setup();
    let billing = sha256_of(&s.billing.cert);
    let token = format!("Authorization: Bearer {}", bound_token(HS_ISSUER, "billing", &billing));
    assert_eq!(curl(&s, Some(&s.billing), "/api/x", &[&token]).0, "200");
    // The same token over another certificate, or none: stolen, refused.
    let (status, body) = curl(&s, Some(&s.shop), "/api/x", &[&token]);
    assert_eq!(status, "401");
    assert!(body.contains("invalid_token") && body.contains("bound to a client certificate"), "{body}");
    assert_eq!(curl(&s, None, "/api/x", &[&token]).0, "401");

    // An issuer that requires bound tokens refuses a plain one, even over
    // a good certificate, and takes a bound one.
    let plain = TestKey::hmac(HS_SECRET.as_bytes()).sign(&claims(BOUND_ISSUER, AUDIENCE, "bob", "tasks:read"));
    let (status, body) = curl(&s, Some(&s.billing), "/api/x", &[&format!("Authorization: Bearer {plain}")]);
    assert_eq!(status, "401");
    assert!(body.contains("must be bound"), "{body}");
    let bound = format!("Authorization: Bearer {}", bound_token(BOUND_ISSUER, "bob", &billing));
    assert_eq!(curl(&s, Some(&s.billing), "/api/x", &[&bound]).0, "200");
    // The other issuer's plain tokens still work.
    let unbound = format!("Authorization: Bearer {}", hs_token("alice", "tasks:read"));
    assert_eq!(curl(&s, None, "/api/x", &[&unbound]).0, "200");
}

#[test]
fn required_client_auth_by_reload_and_the_expiry_metric() {
    let s = setup();
    let expiry = s.proxy.metric(&format!(
        "portcullis_tls_certificate_expiry_timestamp_seconds{{file=\"{}\"}}",
        s.certs.join("server.crt").display()
    ));
    let now = harness::now() as f64;
    let expiry = expiry.unwrap_or_else(|| panic!("no expiry metric:\n{}", s.proxy.metrics()));
    assert!((expiry - now - 90.0 * 86_400.0).abs() < 3_600.0, "notAfter 90 days ahead, got {expiry} at {now}");

    assert_eq!(curl(&s, None, "/public/x", &[]).0, "200");
    s.proxy.rewrite_config(&config(&s.certs, &s.upstream, "required"));
    let refused = wait_until(Duration::from_secs(10), || curl(&s, None, "/public/x", &[]).0.starts_with("curl exit"));
    assert!(refused, "without a certificate the handshake fails once required:\n{}", s.proxy.logs());
    assert_eq!(curl(&s, Some(&s.billing), "/public/x", &[]).0, "200");
    assert_eq!(curl(&s, Some(&s.billing), "/internal/x", &[]).0, "200");
}

#[test]
fn check_names_bad_client_ca_and_certificate_rules() {
    let s = setup();
    let upstream = Upstream::start("api");
    let bad_ca = s.certs.join("not-a-ca.pem");
    std::fs::write(&bad_ca, "not a certificate\n").expect("write");
    let text = config(&s.certs, &upstream, "optional").replace("/ca.crt", "/not-a-ca.pem");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("portcullis.yaml");
    std::fs::write(&file, &text).expect("write config");
    let (code, stdout, stderr) = run_cli(&["check", "--config", &file.display().to_string()], &[(HS_ENV, HS_SECRET)]);
    let output = stdout + &stderr;
    assert_ne!(code, 0);
    assert!(output.contains("portcullis.yaml:5:14:") && output.contains("no PEM CA certificate"), "{output}");

    // `explain` says what a route asks of the certificate.
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, config(&s.certs, &upstream, "optional")).expect("write config");
    let (code, stdout, _) =
        run_cli(&["explain", "-c", &good.display().to_string(), "GET", "/internal/x"], &[(HS_ENV, HS_SECRET)]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("client certificate: required, URI spiffe://cluster.local/ns/billing/* (alone"),
        "{stdout}"
    );
    assert!(stdout.contains("without one: 403 client_certificate_required"), "{stdout}");

    // A route requiring certificates where no client CA is configured.
    let text = config(&s.certs, &upstream, "optional")
        .replace(&format!("  client_ca: \"{}/ca.crt\"\n  client_auth: optional\n", s.certs.display()), "");
    std::fs::write(&file, &text).expect("write config");
    let (code, stdout, stderr) = run_cli(&["check", "--config", &file.display().to_string()], &[(HS_ENV, HS_SECRET)]);
    let output = stdout + &stderr;
    assert_ne!(code, 0);
    assert!(output.contains("client_certs needs tls.client_ca"), "{output}");
}
