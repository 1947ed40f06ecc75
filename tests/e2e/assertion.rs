//! The signed identity assertion (`upstream_assertion:`): the upstream
//! receives a JWT it verifies with the JWKS portcullis publishes, stating
//! the caller, the upstream and exactly the method and path authorised; a
//! client-sent one never passes; a key roll-over publishes both keys.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::client::{get, get_with_token, request};
use harness::fixtures::{hs_issuers, hs_token, HS_ENV, HS_SECRET};
use harness::proxy::{run_cli, Proxy, ProxyOptions};
use harness::servers::Upstream;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::Value;

const HEADER: &str = "x-portcullis-assertion";
const JWKS: &str = "/.well-known/portcullis/jwks.json";

fn key(dir: &Path, name: &str, algorithm: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("openssl")
        .arg("genpkey")
        .args(algorithm)
        .arg("-out")
        .arg(&path)
        .status()
        .expect("openssl genpkey");
    assert!(status.success());
    path
}

fn config(upstream: &Upstream, signing: &Path, published: &[&Path]) -> String {
    let published: Vec<String> = published.iter().map(|p| format!("\"{}\"", p.display())).collect();
    format!(
        r#"threads: 2
upstream_assertion:
  issuer: "https://gateway.example.com"
  key_file: "{signing}"
  published_key_files: [{published}]
upstreams:
  api:
    url: "{upstream}"
{issuers}routes:
  - path: /api/**
    scopes: ["tasks:read"]
  - path: /public/**
    public: true
"#,
        signing = signing.display(),
        published = published.join(", "),
        upstream = upstream.url(),
        issuers = hs_issuers(),
    )
}

fn start(config: &str) -> Proxy {
    Proxy::start_with(ProxyOptions { config, env: &[(HS_ENV, HS_SECRET)], wait_ready: true })
}

/// Verify `jwt` with the proxy's published JWKS; its claims.
fn verify(proxy: &Proxy, jwt: &str) -> Value {
    let response = get(proxy.addr, JWKS, &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.header("cache-control").is_some_and(|c| c.contains("max-age")));
    let set: JwkSet = serde_json::from_slice(&response.body).expect("a JWKS");
    let kid = decode_header(jwt).expect("header").kid.expect("kid");
    let jwk = set.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key");
    let alg = decode_header(jwt).expect("header").alg;
    let mut validation = Validation::new(alg);
    validation.set_audience(&["api"]);
    validation.set_issuer(&["https://gateway.example.com"]);
    decode::<Value>(jwt, &key, &validation).expect("a valid assertion").claims
}

#[test]
fn the_upstream_can_verify_who_was_authorised_for_what() {
    let dir = tempfile::tempdir().expect("temp dir");
    let es = key(dir.path(), "es.pem", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let upstream = Upstream::start("api");
    let proxy = start(&config(&upstream, &es, &[]));
    let token = hs_token("alice", "tasks:read");

    // A spoofed assertion is replaced; the path is the one the upstream
    // receives (normalised, without the query).
    let authorization = format!("Bearer {token}");
    let headers = [("Authorization", authorization.as_str()), ("X-Portcullis-Assertion", "forged")];
    assert_eq!(request(proxy.addr, "GET", "/api/items/%31?q=1", &headers, b"").status, 200);
    let jwt = upstream.last().header(HEADER).expect("an assertion");
    assert_ne!(jwt, "forged");
    let claims = verify(&proxy, &jwt);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["method"], "GET");
    assert_eq!(claims["path"], upstream.last().target.split('?').next().unwrap_or_default());
    assert_eq!(claims["scope"], "tasks:read");
    assert_eq!(claims["exp"].as_u64().zip(claims["iat"].as_u64()).map(|(e, i)| e - i), Some(30));
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    // Each request gets its own.
    assert_eq!(get_with_token(proxy.addr, "/api/items/1", &token).status, 200);
    let second = upstream.last().header(HEADER).expect("an assertion");
    assert_ne!(verify(&proxy, &second)["jti"], claims["jti"]);

    // Public routes get none, and a client's never passes.
    assert_eq!(get(proxy.addr, "/public/x", &[("X-Portcullis-Assertion", "forged")]).status, 200);
    assert_eq!(upstream.last().header(HEADER), None);
    // A refused request reaches no one.
    let count = upstream.count();
    assert_eq!(get(proxy.addr, "/api/items/1", &[]).status, 401);
    assert_eq!(upstream.count(), count);
}

#[test]
fn a_roll_over_publishes_both_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let es = key(dir.path(), "es.pem", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let ed = key(dir.path(), "ed.pem", &["-algorithm", "ed25519"]);
    let upstream = Upstream::start("api");
    let token = hs_token("bob", "tasks:read");
    // Step 1: the next key (Ed25519) published before it signs.
    let proxy = start(&config(&upstream, &es, &[&ed]));
    let set: JwkSet = serde_json::from_slice(&get(proxy.addr, JWKS, &[]).body).expect("JWKS");
    assert_eq!(set.keys.len(), 2);
    assert_eq!(get_with_token(proxy.addr, "/api/x", &token).status, 200);
    let jwt = upstream.last().header(HEADER).expect("assertion");
    assert_eq!(decode_header(&jwt).expect("header").alg, jsonwebtoken::Algorithm::ES256);
    let es_kid = decode_header(&jwt).expect("header").kid;
    drop(proxy);
    // Step 2: it signs, the previous one still published.
    let proxy = start(&config(&upstream, &ed, &[&es]));
    assert_eq!(get_with_token(proxy.addr, "/api/x", &token).status, 200);
    let jwt = upstream.last().header(HEADER).expect("assertion");
    assert_eq!(decode_header(&jwt).expect("header").alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(verify(&proxy, &jwt)["sub"], "bob");
    let set: JwkSet = serde_json::from_slice(&get(proxy.addr, JWKS, &[]).body).expect("JWKS");
    assert!(set.find(es_kid.as_deref().unwrap_or_default()).is_some(), "the previous key is still published");
}

#[test]
fn check_refuses_keys_it_cannot_sign_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rsa = key(dir.path(), "rsa.pem", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let upstream = Upstream::start("api");
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config(&upstream, &rsa, &[])).expect("config");
    let (code, out, err) = run_cli(&["check", "-c", &path.display().to_string()], &[(HS_ENV, HS_SECRET)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("{}:4:13:", path.display())), "{out}");
    assert!(out.contains("is neither an EC P-256 nor an Ed25519 key"), "{out}");
}
