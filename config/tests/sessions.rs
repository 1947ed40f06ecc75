//! `sessions:` (browser sign-in), `browser_login`, and the HTTP/2 switches:
//! what loads, what it means in the model, and every mistake with its
//! FILE:LINE:COL.

use std::collections::HashMap;

use config::{load_with_env, ClientAuth, IdentitySource, Mode, SessionStore};

mod common;
use common::Dir;

/// 32 bytes of 0x01, base64.
const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("WEB_SECRET".to_owned(), "s3cret".to_owned()),
        ("SESSION_KEYS".to_owned(), format!("{KEY}, {KEY}")),
        ("SHORT_KEY".to_owned(), "AQID".to_owned()),
    ])
}

fn text(sessions: &str, routes: &str) -> String {
    format!(
        r#"h2c: true
upstreams:
  api:
    url: "http://127.0.0.1:8000"
    http2: true
issuers:
  - name: sso
    issuer: "https://sso.example.com"
    audiences: [api]
  - name: plain
    issuer: "https://plain.example.com"
    jwks_uri: "https://plain.example.com/jwks"
    audiences: [api]
{sessions}routes:
{routes}"#
    )
}

const SESSIONS: &str = r#"sessions:
  issuer: sso
  public_url: "https://app.example.com"
  client_id: web
  client_secret_env: WEB_SECRET
  cookie:
    key_env: SESSION_KEYS
"#;

const APP: &str = "  - path: /app/**\n    browser_login: true\n";

fn load(text: &str) -> Result<config::Loaded, Vec<String>> {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", text);
    let env = env();
    load_with_env(&path, Mode::Serve, &|name| env.get(name).cloned()).map_err(|e| {
        let prefix = format!("{}:", path.display());
        e.errors().map(|d| d.to_string().trim_start_matches(&prefix).to_owned()).collect()
    })
}

#[test]
fn a_sessions_section_loads_with_its_defaults() {
    let loaded = load(&text(SESSIONS, APP)).expect("valid");
    let config = loaded.config;
    assert!(config.h2c);
    assert!(config.upstreams[0].http2);
    let s = config.sessions.expect("sessions");
    assert_eq!(s.issuer, 0);
    assert_eq!(s.public_origin, "https://app.example.com");
    assert_eq!(s.redirect_uri(), "https://app.example.com/.portcullis/callback");
    assert_eq!(s.scopes, ["openid", "email", "profile"]);
    assert_eq!((s.sign_in_path.as_str(), s.logout_path.as_str()), ("/.portcullis/sign_in", "/.portcullis/logout"));
    assert_eq!(s.identity_from, IdentitySource::AccessToken);
    assert_eq!(s.store, SessionStore::Cookie);
    assert!(matches!(s.client_auth, ClientAuth::Secret(_)));
    assert_eq!(s.cookie.name, "__Host-portcullis");
    assert_eq!(s.cookie.keys.len(), 2);
    assert_eq!(s.cookie.max_age.as_secs(), 12 * 3600);
    // browser_login accepts sessions (and bearer tokens), other routes do not.
    assert_eq!(config.route_browser_login, [true]);
    assert!(config.route_credentials[0].session && config.route_credentials[0].bearer);
    let api = load(&text(SESSIONS, "  - path: /api/**\n")).expect("valid").config;
    assert!(!api.route_credentials[0].session, "a session cookie counts only where a route asks for it");
}

#[test]
fn every_mistake_is_named_with_its_position() {
    let bad = r#"sessions:
  issuer: nope
  public_url: "http://app.example.com/app"
  client_id: web
  client_secret_env: WEB_SECRET
  scopes: [email]
  authorize_params: {state: x, audience: api}
  identity_from: both
  callback_path: /a/../b
  store: redis
  cookie:
    key_env: SHORT_KEY
"#;
    let errors = load(&text(bad, APP)).expect_err("invalid");
    for expected in [
        "15:11: unknown issuer 'nope' (defined: plain, sso)",
        "16:15: public_url is an origin only: no path, query, fragment or user",
        "15:3: sessions.scopes must include openid (this is an OpenID Connect sign-in)",
        "20:22: 'state' is set by portcullis itself",
        "21:18: 'both' is not one of: access_token, id_token",
        "22:18: callback_path must be a plain absolute path like '/.portcullis/callback' (no '..', '//', '?', '#' or '\\')",
        "23:10: store: redis needs the redis section",
        "25:14: key 1 in SHORT_KEY is not base64 of 32 bytes (make one with: openssl rand -base64 32)",
    ] {
        assert!(errors.iter().any(|e| e.contains(expected)), "missing {expected} in {errors:#?}");
    }
    assert!(!errors.iter().any(|e| e.contains("AQID")), "a key is never printed: {errors:#?}");
    let http = SESSIONS.replace("https://app.example.com", "http://app.example.com");
    let errors = load(&text(&http, APP)).expect_err("plain http");
    assert!(errors.iter().any(|e| e.contains("public_url must be https")), "{errors:#?}");
    // Loopback over http is fine: browsers keep Secure cookies there.
    let local = SESSIONS.replace("https://app.example.com", "http://localhost:8080");
    assert!(load(&text(&local, APP)).is_ok());
}

#[test]
fn an_issuer_without_discovery_needs_the_endpoints() {
    let sessions = SESSIONS.replace("issuer: sso", "issuer: plain");
    let errors = load(&text(&sessions, APP)).expect_err("invalid");
    assert!(errors.iter().any(|e| e.contains("this issuer has no discovery document")), "{errors:#?}");
    let with = sessions.replace(
        "  client_id: web\n",
        "  client_id: web\n  authorization_endpoint: \"https://plain.example.com/auth\"\n  token_endpoint: \"https://plain.example.com/token\"\n",
    );
    assert!(load(&text(&with, APP)).is_ok());
}

#[test]
fn routes_ask_for_sessions_consistently() {
    let errors = load(&text("", APP)).expect_err("no sessions");
    assert!(errors.iter().any(|e| e.contains("browser_login needs the sessions section")), "{errors:#?}");
    let public = "  - path: /app/**\n    public: true\n    browser_login: true\n";
    let errors = load(&text(SESSIONS, public)).expect_err("public");
    assert!(errors.iter().any(|e| e.contains("a public route cannot also have browser_login")), "{errors:#?}");
    let bearer_only = "  - path: /app/**\n    browser_login: true\n    credentials: [bearer]\n";
    let errors = load(&text(SESSIONS, bearer_only)).expect_err("no session kind");
    assert!(errors.iter().any(|e| e.contains("add session to credentials")), "{errors:#?}");
    let errors = load(&text("", "  - path: /x\n    credentials: [session]\n")).expect_err("no sessions");
    assert!(errors.iter().any(|e| e.contains("session: no sessions section is configured")), "{errors:#?}");
}

#[test]
fn a_private_key_jwt_key_must_be_pkcs8_or_rsa() {
    let dir = Dir::new();
    let sec1 = dir.write("sec1.pem", "-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----\n");
    let sessions = SESSIONS.replace(
        "  client_secret_env: WEB_SECRET\n",
        &format!("  private_key_jwt:\n    key_file: \"{}\"\n    audience: issuer\n", sec1.display()),
    );
    let errors = load(&text(&sessions, APP)).expect_err("SEC1");
    assert!(errors.iter().any(|e| e.contains("openssl pkcs8 -topk8 -nocrypt")), "{errors:#?}");
}
