//! A real OpenID provider: `oidc-provider` from npm, in `tests/idp`.
//!
//! Besides the client-credentials client it has two browser sign-in
//! clients (authorization code + PKCE S256, refresh tokens, RP-initiated
//! logout) whose redirect URI is `http://127.0.0.1:<any port>/.portcullis/callback`
//! (or `localhost`); its development sign-in page takes any login name and
//! password. See `tests/idp/README.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;

use crate::client::{request, Response};

pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "portcullis-test-secret";
/// The browser sign-in client with a secret (`client_secret_basic` or
/// `client_secret_post`).
pub const WEB_CLIENT_ID: &str = "portcullis-web";
pub const WEB_CLIENT_SECRET: &str = "portcullis-web-secret";
/// The browser sign-in client that authenticates with `private_key_jwt`;
/// only registered when [`ProviderOptions::client_jwks`] is given.
pub const WEB_JWT_CLIENT_ID: &str = "portcullis-web-jwt";
/// The only redirect path the web clients accept (on any loopback port).
pub const CALLBACK_PATH: &str = "/.portcullis/callback";
/// `client_assertion_type` of a `private_key_jwt` client assertion.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
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

/// How to start the provider.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Access-token lifetime (`--ttl`).
    pub ttl_seconds: u64,
    /// The public JWKS (JSON) of the `private_key_jwt` web client
    /// (`--client-jwks`); without it that client does not exist.
    pub client_jwks: Option<String>,
}

impl Default for ProviderOptions {
    fn default() -> ProviderOptions {
        ProviderOptions { ttl_seconds: 600, client_jwks: None }
    }
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
        OidcProvider::start_with(ProviderOptions { ttl_seconds, ..ProviderOptions::default() })
    }

    /// Rarely (twice in hundreds of starts, under load) node started and
    /// never printed its ready line: one more try, and the first try's
    /// stderr in the message if that fails too.
    pub fn start_with(options: ProviderOptions) -> OidcProvider {
        ensure_installed();
        let mut failures = Vec::new();
        for _ in 0..2 {
            match OidcProvider::try_start(&options) {
                Ok(provider) => return provider,
                Err(why) => failures.push(why),
            }
        }
        panic!("the OpenID provider did not start: {failures:#?}");
    }

    fn try_start(options: &ProviderOptions) -> Result<OidcProvider, String> {
        let mut command = Command::new("node");
        command.arg(idp_dir().join("server.mjs")).args(["--port", "0", "--ttl", &options.ttl_seconds.to_string()]);
        // The server reads the file before it announces itself, so the file
        // only has to outlive the ready line.
        let jwks_dir = tempfile::tempdir().expect("directory for the client JWKS");
        if let Some(jwks) = &options.client_jwks {
            let path = jwks_dir.path().join("client-jwks.json");
            std::fs::write(&path, jwks).expect("writing the client JWKS");
            command.arg("--client-jwks").arg(path);
        }
        let stderr_path = jwks_dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("provider stderr file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting node tests/idp/server.mjs");
        let stdin = child.stdin.take().expect("provider stdin");
        let stdout = child.stdout.take().expect("provider stdout");
        let line = match crate::try_ready_line(stdout, Duration::from_secs(20)) {
            Ok(line) => line,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let output = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err(format!("{why}; stderr: {output}"));
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the provider did not announce itself ({e}): {line:?}"));
        let issuer = ready["issuer"].as_str().expect("issuer in ready line").to_owned();
        let port = ready["port"].as_u64().and_then(|p| u16::try_from(p).ok()).expect("port in ready line");
        drop(jwks_dir);
        Ok(OidcProvider { child, _stdin: stdin, issuer, addr: crate::loopback(port) })
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn authorization_endpoint(&self) -> String {
        self.url("/auth")
    }

    pub fn token_endpoint(&self) -> String {
        self.url("/token")
    }

    /// RP-initiated logout (`id_token_hint`, `post_logout_redirect_uri`,
    /// `client_id`, `state`); it asks no question and redirects (303) to
    /// the post-logout URI, revoking the session's grants.
    pub fn end_session_endpoint(&self) -> String {
        self.url("/session/end")
    }

    /// The authorization endpoint with these query parameters, encoded.
    pub fn authorization_url(&self, params: &[(&str, &str)]) -> String {
        format!("{}?{}", self.authorization_endpoint(), form_urlencoded(params))
    }

    /// A form POST to the token endpoint with `headers` (client
    /// authentication) and `form` fields.
    pub fn token_request(&self, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Response {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        request(self.addr, "POST", "/token", &all, form_urlencoded(form).as_bytes())
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

/// `Authorization: Basic` credentials for a client.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", form_encode(client_id), form_encode(secret))))
}

/// `name=value&...`, form-encoded.
pub fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// 32 random bytes, base64url: for `state`, `nonce`, `jti` and PKCE
/// verifiers.
pub fn random_string() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE pair: `(code_verifier, S256 code_challenge)`.
pub fn pkce() -> (String, String) {
    let verifier = random_string();
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

/// The payload of a compact JWS, unverified.
pub fn jwt_payload(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token:?}"));
    let bytes =
        URL_SAFE_NO_PAD.decode(payload).unwrap_or_else(|e| panic!("JWT payload is not base64url ({e}): {token:?}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT payload is not JSON ({e}): {token:?}"))
}

/// A `private_key_jwt` client assertion (RFC 7523) for `client_id`,
/// addressed to `audience` (the token endpoint or the issuer), valid for a
/// minute, with a fresh `jti`.
pub fn client_assertion(key: &crate::keys::TestKey, client_id: &str, audience: &str) -> String {
    let now = crate::now();
    key.sign(&json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": random_string(),
        "iat": now,
        "exp": now + 60,
    }))
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
