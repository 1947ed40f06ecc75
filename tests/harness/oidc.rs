//! A real OpenID provider: `oidc-provider` from npm, in `tests/idp`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::client::{request, Response};

pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "portcullis-test-secret";
/// Resource indicator of the main API; its tokens carry `aud: todo-api`.
pub const TODO_API: &str = "urn:portcullis:todo-api";
/// Same audience, ES256-signed tokens.
pub const TODO_API_ES256: &str = "urn:portcullis:todo-api:es256";
/// Tokens with `aud: other-api`.
pub const OTHER_API: &str = "urn:portcullis:other-api";
/// Opaque tokens with `aud: opaque-api`, checked by introspection.
pub const OPAQUE_API: &str = "urn:portcullis:opaque-api";

/// A running provider, stopped when dropped (and by itself if the test
/// process dies: it exits when its stdin closes).
pub struct OidcProvider {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
    pub addr: SocketAddr,
}

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("idp")
}

/// `npm ci` once if `node_modules` is missing; a directory lock keeps
/// parallel test processes from installing twice.
fn ensure_installed() {
    let dir = idp_dir();
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return;
    }
    let lock = dir.join(".install-lock");
    let acquired = crate::wait_until(Duration::from_secs(300), || std::fs::create_dir(&lock).is_ok());
    assert!(acquired, "timed out waiting for another test to install tests/idp");
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("running npm (Node.js and npm are required for the OIDC tests)");
        let _ = std::fs::remove_dir(&lock);
        assert!(status.success(), "npm ci in tests/idp failed");
    } else {
        let _ = std::fs::remove_dir(&lock);
    }
}

impl OidcProvider {
    pub fn start() -> OidcProvider {
        OidcProvider::start_with_ttl(600)
    }

    pub fn start_with_ttl(ttl_seconds: u64) -> OidcProvider {
        ensure_installed();
        let mut child = Command::new("node")
            .arg(idp_dir().join("server.mjs"))
            .args(["--port", "0", "--ttl", &ttl_seconds.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node tests/idp/server.mjs");
        let stdin = child.stdin.take().expect("provider stdin");
        let stdout = child.stdout.take().expect("provider stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reading the provider's ready line");
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the provider did not announce itself ({e}): {line:?}"));
        let issuer = ready["issuer"].as_str().expect("issuer in ready line").to_owned();
        let port = ready["port"].as_u64().and_then(|p| u16::try_from(p).ok()).expect("port in ready line");
        OidcProvider { child, _stdin: stdin, issuer, addr: crate::loopback(port) }
    }

    /// A client-credentials access token for `resource` with `scope`.
    pub fn token(&self, resource: &str, scope: &str) -> String {
        let response = self.token_response(resource, scope);
        assert_eq!(response.status, 200, "token request failed: {}", response.text());
        response.json()["access_token"].as_str().expect("access_token").to_owned()
    }

    pub fn token_response(&self, resource: &str, scope: &str) -> Response {
        let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let body =
            format!("grant_type=client_credentials&resource={}&scope={}", form_encode(resource), form_encode(scope));
        request(
            self.addr,
            "POST",
            "/token",
            &[("Authorization", &format!("Basic {basic}")), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// Revoke a token (RFC 7009).
    pub fn revoke(&self, token: &str) {
        let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let body = format!("token={}", form_encode(token));
        let response = request(
            self.addr,
            "POST",
            "/token/revocation",
            &[("Authorization", &format!("Basic {basic}")), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(response.status, 200, "revocation failed: {}", response.text());
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
