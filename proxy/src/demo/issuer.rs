//! The demo's OpenID issuer: an ES256 key generated at start, published as
//! a discovery document and JWKS (so the real discovery and JWKS code
//! runs), tokens minted for the banner's curl commands, and just enough of
//! the authorization code flow for browser sign-in: a one-click sign-in
//! page, codes bound to their PKCE challenge, a token endpoint for codes
//! and refresh tokens, and a logout endpoint. Demo only: one client, users
//! picked from a list, everything in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::json;
use crate::idp::{form_urlencode, unix_now};
use crate::session::query_value;

/// The demo audience and key id.
const AUDIENCE: &str = "todo-api";
const KID: &str = "demo-key-1";
/// The browser client of the demo configuration.
pub(super) const CLIENT_ID: &str = "portcullis-demo";
/// Users the sign-in page offers, with their scopes.
const USERS: [(&str, &str); 3] =
    [("alice", "tasks:read"), ("bob", "tasks:read tasks:write"), ("carol", "tasks:read admin")];
/// Codes are good this long, once.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Pending codes and refresh tokens kept at most (memory stays bounded).
const MAX_GRANTS: usize = 10_000;

/// What a code or refresh token was issued for.
struct Grant {
    user: &'static str,
    scopes: &'static str,
    nonce: Option<String>,
    challenge: Option<String>,
    issued: Instant,
}

/// A signing key generated for this run only, and the grants it issued.
pub(crate) struct DemoIssuer {
    pub issuer: String,
    pkcs8: Vec<u8>,
    jwks: String,
    /// Where the proxy's callback is: the only redirect URI accepted.
    redirect_uri: String,
    /// The proxy's origin: the only post-logout destination.
    public_origin: String,
    client_secret: String,
    codes: Mutex<HashMap<String, Grant>>,
    refresh_tokens: Mutex<HashMap<String, Grant>>,
}

impl DemoIssuer {
    pub(crate) fn generate(issuer: String, public_origin: String, client_secret: String) -> anyhow::Result<DemoIssuer> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a demo key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("cannot load the demo key"))?;
        // Uncompressed point: 0x04 || X || Y.
        let point = pair.public_key().as_ref();
        anyhow::ensure!(point.len() == 65, "unexpected public key encoding");
        let jwks = serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
        .to_string();
        Ok(DemoIssuer {
            issuer,
            pkcs8: pkcs8.as_ref().to_vec(),
            jwks,
            redirect_uri: format!("{public_origin}/.portcullis/callback"),
            public_origin,
            client_secret,
            codes: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
        })
    }

    /// A token for `subject` with `scopes`, valid for an hour.
    pub(crate) fn mint(&self, subject: &str, scopes: &str) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": subject, "aud": AUDIENCE, "scope": scopes,
            "iat": now, "nbf": now, "exp": now + 3600,
            "email": format!("{subject}@demo.example"),
        });
        self.sign(&claims)
    }

    fn id_token(&self, grant: &Grant) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": grant.user, "aud": CLIENT_ID, "nonce": grant.nonce,
            "iat": now, "exp": now + 600, "email": format!("{}@demo.example", grant.user),
        });
        self.sign(&claims)
    }

    fn sign(&self, claims: &serde_json::Value) -> anyhow::Result<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        jsonwebtoken::encode(&header, claims, &key).context("signing a demo token")
    }

    fn discovery(&self) -> String {
        let base = &self.issuer;
        serde_json::json!({
            "issuer": base,
            "jwks_uri": format!("{base}/jwks"),
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "end_session_endpoint": format!("{base}/logout"),
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
        })
        .to_string()
    }

    /// Answer one request to the issuer.
    pub(super) async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = request.uri().query().unwrap_or("").to_owned();
        match (request.method(), request.uri().path()) {
            (_, "/.well-known/openid-configuration") => json(StatusCode::OK, self.discovery()),
            (_, "/jwks") => json(StatusCode::OK, self.jwks.clone()),
            (&Method::GET, "/authorize") => self.sign_in_page(&query),
            (&Method::GET, "/authorize/approve") => self.approve(&query),
            (&Method::POST, "/token") => {
                let basic = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let authorised = basic == Some(&self.basic_credentials());
                let body = Limited::new(request.into_body(), 64 * 1024).collect().await;
                match body {
                    Ok(body) if authorised => self.token(&String::from_utf8_lossy(&body.to_bytes())),
                    Ok(_) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
                    Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
                }
            }
            (&Method::GET, "/logout") => match query_value(&query, "post_logout_redirect_uri") {
                Some(target) if target.starts_with(&format!("{}/", self.public_origin)) => redirect(&target),
                _ => html(StatusCode::OK, "<p>Signed out of the demo issuer.</p>".to_owned()),
            },
            _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.to_owned()),
        }
    }

    fn basic_credentials(&self) -> String {
        let pair = format!("{}:{}", form_urlencode(CLIENT_ID), form_urlencode(&self.client_secret));
        format!("Basic {}", STANDARD.encode(pair))
    }

    /// The one-click sign-in page (the checks a real IdP makes first).
    fn sign_in_page(&self, query: &str) -> Response<Full<Bytes>> {
        let param = |name| query_value(query, name).map(|v| v.into_owned());
        if param("client_id").as_deref() != Some(CLIENT_ID)
            || param("redirect_uri").as_deref() != Some(&self.redirect_uri)
        {
            return html(StatusCode::BAD_REQUEST, "<p>Unknown client or redirect URI.</p>".to_owned());
        }
        if param("response_type").as_deref() != Some("code")
            || param("code_challenge_method").as_deref() != Some("S256")
        {
            return html(StatusCode::BAD_REQUEST, "<p>Only the code flow with PKCE S256 is supported.</p>".to_owned());
        }
        let mut buttons = String::new();
        for (user, scopes) in USERS {
            let href = format!("/authorize/approve?{query}&user={user}");
            buttons.push_str(&format!(
                "<p><a href=\"{}\"><button>Sign in as {user}</button></a> <small>({scopes})</small></p>\n",
                escape(&href)
            ));
        }
        html(
            StatusCode::OK,
            format!(
                "<!doctype html><title>portcullis demo sign-in</title>\
                 <h1>portcullis demo issuer</h1><p>Pick a user (demo only: no password).</p>\n{buttons}"
            ),
        )
    }

    /// The user picked: a one-time code back to the proxy's callback.
    fn approve(&self, query: &str) -> Response<Full<Bytes>> {
        let param = |name| query_value(query, name).map(|v| v.into_owned());
        let Some((user, scopes)) = USERS.into_iter().find(|(u, _)| param("user").as_deref() == Some(u)) else {
            return html(StatusCode::BAD_REQUEST, "<p>Unknown user.</p>".to_owned());
        };
        if param("redirect_uri").as_deref() != Some(&self.redirect_uri) {
            return html(StatusCode::BAD_REQUEST, "<p>Unknown redirect URI.</p>".to_owned());
        }
        let code = random();
        let grant =
            Grant { user, scopes, nonce: param("nonce"), challenge: param("code_challenge"), issued: Instant::now() };
        insert_bounded(&self.codes, code.clone(), grant);
        let state = param("state").unwrap_or_default();
        redirect(&format!("{}?code={code}&state={}", self.redirect_uri, form_urlencode(&state)))
    }

    /// The token endpoint: a code (once, within a minute, with its PKCE
    /// verifier) or a refresh token.
    fn token(&self, form: &str) -> Response<Full<Bytes>> {
        let param = |name| query_value(form, name).map(|v| v.into_owned());
        let grant = match param("grant_type").as_deref() {
            Some("authorization_code") => {
                let taken = param("code").and_then(|code| self.codes.lock().ok()?.remove(&code));
                let verifier = param("verifier_missing").or_else(|| param("code_verifier")).unwrap_or_default();
                let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
                match taken {
                    Some(grant)
                        if grant.issued.elapsed() < CODE_LIFETIME
                            && grant.challenge.as_deref() == Some(challenge.as_str())
                            && param("redirect_uri").as_deref() == Some(&self.redirect_uri) =>
                    {
                        grant
                    }
                    _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
                }
            }
            Some("refresh_token") => {
                let found = param("refresh_token").and_then(|token| {
                    let tokens = self.refresh_tokens.lock().ok()?;
                    tokens.get(&token).map(|g| Grant {
                        user: g.user,
                        scopes: g.scopes,
                        nonce: None,
                        challenge: None,
                        issued: Instant::now(),
                    })
                });
                match found {
                    Some(grant) => grant,
                    None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
                }
            }
            _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        };
        let (Ok(access_token), Ok(id_token)) = (self.mint(grant.user, grant.scopes), self.id_token(&grant)) else {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        };
        let refresh_token = random();
        let answer = serde_json::json!({
            "access_token": access_token, "token_type": "Bearer", "expires_in": 3600,
            "id_token": id_token, "refresh_token": refresh_token,
        });
        insert_bounded(&self.refresh_tokens, refresh_token, grant);
        json(StatusCode::OK, answer.to_string())
    }
}

fn insert_bounded(map: &Mutex<HashMap<String, Grant>>, key: String, grant: Grant) {
    if let Ok(mut map) = map.lock() {
        if map.len() >= MAX_GRANTS {
            map.clear();
        }
        map.insert(key, grant);
    }
}

fn random() -> String {
    let mut bytes = [0u8; 24];
    // The system generator does not fail on Linux; an empty code is
    // refused by the token endpoint anyway.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(value) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

fn oauth_error(status: StatusCode, error: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "error": error }).to_string())
}
