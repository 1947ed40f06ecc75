//! Browser sign-in against a fake identity provider this file controls:
//! the harness key server publishes the keys (discovery + JWKS) and a small
//! token endpoint here answers whatever each test chooses, so forged or
//! mismatched ID tokens, refused codes and outages can be served on
//! purpose. The browser is never really sent to the authorization endpoint:
//! the test reads `state` and `nonce` from the redirect and comes back to
//! the callback itself, as the IdP would send it.
//!
//! Covered: a good sign-in (PKCE S256, `client_secret_basic`), every ID
//! token check, token-endpoint refusals and outages, the state and
//! sign-in cookie binding, `identity_from: id_token`, `private_key_jwt`,
//! and sessions kept in Redis shared by two replicas.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use harness::client::{get, Response};
use harness::config::TestConfig;
use harness::fixtures::{AUDIENCE, HS_ENV, HS_SECRET};
use harness::keys::{claims, forge, forge_hs256, jwks, pem_body, TestKey};
use harness::proxy::{Proxy, ProxyOptions, PROXY_PORT};
use harness::redis::RedisServer;
use harness::servers::{KeyServer, Upstream};
use harness::signin::{query_pairs, query_param, NAVIGATION_HEADERS};
use harness::{now, runtime, wait_until};

const CLIENT_ID: &str = "portcullis-web";
const SECRET_ENV: &str = "WEB_SECRET";
const CLIENT_SECRET: &str = "a-web-client-secret";
const KEYS_ENV: &str = "SESSION_KEYS";
const HASH_ENV: &str = "PORTCULLIS_REDIS_KEY";
const HASH_KEY: &str = "a-test-hashing-key-of-32-bytes!!";
const CALLBACK: &str = "/.portcullis/callback";
const SESSION_COOKIE: &str = "__Host-portcullis";
const SIGN_IN_COOKIE: &str = "__Host-portcullis-signin-";

/// One call the token endpoint received.
#[derive(Debug, Clone)]
struct TokenCall {
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl TokenCall {
    fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What the token endpoint does with the next call.
#[derive(Debug, Clone)]
enum Answer {
    /// This status and JSON body.
    Reply(u16, String),
    /// Close the connection without answering (an IdP that is down).
    Drop,
}

/// The fake IdP's token endpoint (`/token`); `/authorize` is only a URL
/// the proxy sends browsers to.
struct FakeIdp {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<TokenCall>>>,
    answer: Arc<Mutex<Answer>>,
}

impl FakeIdp {
    fn start() -> FakeIdp {
        let listener = runtime().block_on(TcpListener::bind("127.0.0.1:0")).expect("bind the fake IdP");
        let addr = listener.local_addr().expect("fake IdP address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer::Reply(500, r#"{"error":"no answer chosen"}"#.to_owned())));
        let (log, next) = (Arc::clone(&calls), Arc::clone(&answer));
        runtime().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                // Every answer closes its connection, so each call comes
                // through here and sees the current mode.
                if matches!(*next.lock().expect("answer"), Answer::Drop) {
                    drop(stream);
                    continue;
                }
                let (log, next) = (Arc::clone(&log), Arc::clone(&next));
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (log, next) = (Arc::clone(&log), Arc::clone(&next));
                        async move { Ok::<_, Infallible>(token_endpoint(request, log, next).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeIdp { addr, calls, answer }
    }

    fn authorization_endpoint(&self) -> String {
        format!("http://{}/authorize", self.addr)
    }

    fn token_endpoint(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("answer") = answer;
    }

    /// Answer 200 with these tokens.
    fn answer_tokens(&self, access_token: &str, id_token: Option<&str>) {
        let mut body = json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600});
        if let Some(id_token) = id_token {
            body["id_token"] = id_token.into();
        }
        self.answer(Answer::Reply(200, body.to_string()));
    }

    fn calls(&self) -> Vec<TokenCall> {
        self.calls.lock().expect("calls").clone()
    }

    fn last_call(&self) -> TokenCall {
        self.calls().last().cloned().expect("the token endpoint was never called")
    }
}

async fn token_endpoint(
    request: Request<Incoming>,
    log: Arc<Mutex<Vec<TokenCall>>>,
    next: Arc<Mutex<Answer>>,
) -> hyper::Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let (status, body) = if path == "/token" {
        let form = query_pairs(&String::from_utf8_lossy(&body));
        log.lock().expect("calls").push(TokenCall { authorization, form });
        match next.lock().expect("answer").clone() {
            Answer::Reply(status, body) => (status, body),
            Answer::Drop => (500, "{}".to_owned()),
        }
    } else {
        (404, "{}".to_owned())
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).expect("a status code");
    response.headers_mut().insert("content-type", "application/json".parse().expect("header value"));
    response.headers_mut().insert("connection", "close".parse().expect("header value"));
    response
}

/// The servers a proxy under test talks to.
struct Fixture {
    upstream: Upstream,
    keys: KeyServer,
    rsa: TestKey,
    idp: FakeIdp,
}

impl Fixture {
    fn new() -> Fixture {
        let rsa = TestKey::rsa("rsa-1");
        let keys = KeyServer::start(jwks(&[&rsa]));
        Fixture { upstream: Upstream::start("app"), keys, rsa, idp: FakeIdp::start() }
    }

    /// `sessions:` with the fake IdP's endpoints; `client_auth` and `more`
    /// are lines of the section (indented two spaces).
    fn sessions(&self, client_auth: &str, more: &str) -> String {
        format!(
            "sessions:\n  issuer: sso\n  public_url: \"http://127.0.0.1:{PROXY_PORT}\"\n  client_id: {CLIENT_ID}\n\
             {client_auth}  scopes: [openid, email]\n  authorize_params: {{resource: \"urn:portcullis:todo-api\"}}\n  \
             authorization_endpoint: \"{}\"\n  token_endpoint: \"{}\"\n  cookie: {{key_env: {KEYS_ENV}, max_age: \
             12h, idle_timeout: 1h}}\n{more}",
            self.idp.authorization_endpoint(),
            self.idp.token_endpoint(),
        )
    }

    /// The standard configuration, the issuer `sso` pinned to RS256, the
    /// sessions section `sessions` (with `extra` top-level YAML) and the
    /// browser route `/app/**` with `app_route` settings.
    fn config(&self, sessions: &str, extra: &str, app_route: &[(&str, &str)]) -> String {
        let mut route = vec![("path", "/app/**"), ("browser_login", "true")];
        route.extend_from_slice(app_route);
        TestConfig::new(&self.keys.issuer(), &self.upstream.url())
            .issuer_option("algorithms", "[\"RS256\"]")
            .extra(extra)
            .extra(sessions)
            .leading_route(&route)
            .render()
    }

    fn proxy(&self, config: &str) -> Proxy {
        let keys = session_keys();
        let env = [(HS_ENV, HS_SECRET), (SECRET_ENV, CLIENT_SECRET), (KEYS_ENV, &keys), (HASH_ENV, HASH_KEY)];
        Proxy::start_with(ProxyOptions { config, env: &env, wait_ready: true })
    }

    /// A valid access token for the API, as the IdP would issue it.
    fn access_token(&self, sub: &str) -> String {
        self.rsa.sign(&claims(&self.keys.issuer(), AUDIENCE, sub, "tasks:read"))
    }

    /// The claims of a good ID token for this sign-in.
    fn id_claims(&self, sub: &str, nonce: &str) -> Value {
        let now = now();
        json!({
            "iss": self.keys.issuer(), "sub": sub, "aud": CLIENT_ID, "nonce": nonce,
            "email": format!("{sub}@example.com"), "iat": now, "exp": now + 300,
        })
    }

    /// Sign in as `sub` through `proxy` (a navigation to `/app/`, the
    /// callback with good tokens); the session's `Cookie` header.
    fn sign_in(&self, proxy: &Proxy, sub: &str) -> String {
        let started = begin(proxy, &self.idp, "/app/");
        let access_token = self.access_token(sub);
        let id_token = self.rsa.sign(&self.id_claims(sub, &started.nonce));
        self.idp.answer_tokens(&access_token, Some(&id_token));
        let answer = started.callback(proxy);
        assert_eq!(answer.status, 302, "{}", answer.text());
        session_cookie(&answer).expect("a signed-in browser gets a session cookie")
    }
}

/// Two session keys (the first seals), as the operator writes them.
fn session_keys() -> String {
    format!("{},{}", STANDARD.encode([7u8; 32]), STANDARD.encode([9u8; 32]))
}

/// A sign-in the proxy started: what it sent the browser.
struct Started {
    location: String,
    state: String,
    nonce: String,
    challenge: String,
    /// `name=value` of the sign-in cookie.
    cookie: String,
}

impl Started {
    /// The IdP's redirect back with a code and this sign-in's state and cookie.
    fn callback(&self, proxy: &Proxy) -> Response {
        callback(proxy, &format!("code=x&state={}", self.state), Some(&self.cookie))
    }
}

/// A navigation to `path` without a session: the proxy's redirect to the
/// IdP, checked, and what it carries.
fn begin(proxy: &Proxy, idp: &FakeIdp, path: &str) -> Started {
    let answer = get(proxy.addr, path, NAVIGATION_HEADERS);
    assert_eq!(answer.status, 302, "a navigation without a session is sent to sign in: {}", answer.text());
    let location = answer.header("location").expect("a redirect has a Location").to_owned();
    assert!(
        location.starts_with(&format!("{}?", idp.authorization_endpoint())),
        "sent to the configured authorization endpoint: {location}"
    );
    let param = |name: &str| query_param(&location, name).unwrap_or_else(|| panic!("{name} in {location}"));
    let state = param("state");
    let cookies = set_cookies(&answer);
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with(SIGN_IN_COOKIE))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("a sign-in cookie is set: {cookies:?}"));
    assert!(
        cookie.starts_with(&format!("{SIGN_IN_COOKIE}{}=", &state[..12])),
        "the sign-in cookie is named after the state's first 12 characters: {cookie}"
    );
    Started { state, nonce: param("nonce"), challenge: param("code_challenge"), cookie, location }
}

/// `GET` the callback with `query` and, if given, a `Cookie` header.
fn callback(proxy: &Proxy, query: &str, cookie: Option<&str>) -> Response {
    let mut headers = NAVIGATION_HEADERS.to_vec();
    if let Some(cookie) = cookie {
        headers.push(("Cookie", cookie));
    }
    get(proxy.addr, &format!("{CALLBACK}?{query}"), &headers)
}

fn set_cookies(answer: &Response) -> Vec<String> {
    answer.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.clone()).collect()
}

/// The session cookie (all its parts) the answer sets, as a `Cookie`
/// header; `None` when it sets none with a value.
fn session_cookie(answer: &Response) -> Option<String> {
    let parts: Vec<String> = set_cookies(answer)
        .iter()
        .filter_map(|c| c.split(';').next())
        .filter(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let part = name.strip_prefix(SESSION_COOKIE);
            !value.is_empty()
                && part.is_some_and(|rest| {
                    rest.is_empty() || rest.strip_prefix('-').is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
        })
        .map(str::to_owned)
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The value of `portcullis_sign_ins_total` for `result` (0 when absent).
fn sign_ins(proxy: &Proxy, result: &str) -> f64 {
    proxy.metric(&format!("portcullis_sign_ins_total{{result=\"{result}\"}}")).unwrap_or(0.0)
}

/// Whether `portcullis_requests_total` shows `decision` soon: the request
/// metrics are recorded after the answer is written.
fn saw_decision(proxy: &Proxy, decision: &str) -> bool {
    let series = format!("decision=\"{decision}\"");
    wait_until(Duration::from_secs(2), || proxy.metrics().contains(&series))
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// `at_hash` of an access token under RS256: the left half of its SHA-256.
fn at_hash(access_token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

fn secret_auth() -> String {
    format!("  client_secret_env: {SECRET_ENV}\n")
}

#[test]
fn a_good_id_token_signs_the_browser_in_with_pkce_and_the_client_secret() {
    let f = Fixture::new();
    let proxy = f.proxy(&f.config(&f.sessions(&secret_auth(), ""), "", &[("scopes", "[tasks:read]")]));
    let started = begin(&proxy, &f.idp, "/app/page?x=1");
    let origin = format!("http://{}", proxy.addr);
    let param = |name: &str| query_param(&started.location, name);
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(param("redirect_uri"), Some(format!("{origin}{CALLBACK}")));
    assert_eq!(param("scope").as_deref(), Some("openid email"));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("resource").as_deref(), Some("urn:portcullis:todo-api"), "authorize_params are added");
    assert_ne!(started.state, started.nonce, "state and nonce are separate random values");
    assert!(started.state.len() >= 43 && started.nonce.len() >= 43, "at least 256 bits each: {}", started.location);
    assert!(f.idp.calls().is_empty(), "nothing is sent to the token endpoint before the callback");

    // The IdP's answer: a token for the API, and an ID token with every
    // optional check present and right (azp, at_hash).
    let access_token = f.access_token("alice");
    let mut id_claims = f.id_claims("alice", &started.nonce);
    id_claims["azp"] = CLIENT_ID.into();
    id_claims["at_hash"] = at_hash(&access_token).into();
    f.idp.answer_tokens(&access_token, Some(&f.rsa.sign(&id_claims)));
    let answer = started.callback(&proxy);
    assert_eq!(answer.status, 302, "{}", answer.text());
    assert_eq!(answer.header("location"), Some("/app/page?x=1"), "back where the browser was going");
    let cookies = set_cookies(&answer);
    let session = session_cookie(&answer).unwrap_or_else(|| panic!("a session cookie is set: {cookies:?}"));
    let sign_in_name = started.cookie.split('=').next().expect("cookie name");
    assert!(
        cookies.iter().any(|c| c.starts_with(&format!("{sign_in_name}=;")) && c.contains("Max-Age=0")),
        "the sign-in cookie is expired: {cookies:?}"
    );
    for cookie in cookies.iter().filter(|c| c.starts_with(SESSION_COOKIE)) {
        for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(cookie.contains(attribute), "{attribute} on {cookie}");
        }
        assert!(!cookie.contains("Domain"), "a __Host- cookie has no Domain: {cookie}");
    }

    // What reached the token endpoint: the code, the redirect URI, the
    // PKCE verifier of this sign-in, and the client's secret.
    let call = f.idp.last_call();
    assert_eq!(f.idp.calls().len(), 1);
    assert_eq!(call.field("grant_type"), Some("authorization_code"));
    assert_eq!(call.field("code"), Some("x"));
    assert_eq!(call.field("redirect_uri"), Some(format!("{origin}{CALLBACK}").as_str()));
    let verifier = call.field("code_verifier").expect("a code_verifier");
    assert!((43..=128).contains(&verifier.len()), "RFC 7636 verifier length: {verifier}");
    assert_eq!(s256(verifier), started.challenge, "the verifier hashes (S256) to the challenge sent");
    let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    assert_eq!(call.authorization.as_deref(), Some(basic.as_str()), "client_secret_basic");
    assert_eq!(call.field("client_secret"), None, "the secret is not also in the form");

    // The session works like the access token: the upstream sees the
    // identity, never the proxy's cookies.
    let with_session = [("Cookie", session.as_str()), ("Accept", "application/json")];
    let answer = get(proxy.addr, "/app/page?x=1", &with_session);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = f.upstream.last();
    assert_eq!(seen.target, "/app/page?x=1");
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-auth-scopes").as_deref(), Some("tasks:read"));
    assert_eq!(seen.header("cookie"), None, "the session cookie is the proxy's, not the upstream's");
    assert_eq!(sign_ins(&proxy, "started"), 1.0);
    assert_eq!(sign_ins(&proxy, "completed"), 1.0);
    assert!(saw_decision(&proxy, "signed_in"), "{}", proxy.metrics());

    // A tampered session cookie is no session: an API client gets 401,
    // and the browser is told to drop the cookie.
    let tampered = session.replacen('=', "=A", 1);
    let answer = get(proxy.addr, "/app/", &[("Cookie", &tampered), ("Accept", "application/json")]);
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(
        set_cookies(&answer).iter().any(|c| c.starts_with(&format!("{SESSION_COOKIE}=;")) && c.contains("Max-Age=0")),
        "{:?}",
        set_cookies(&answer)
    );
}

#[test]
fn forged_or_mismatched_id_tokens_are_refused_with_no_session() {
    let f = Fixture::new();
    let proxy = f.proxy(&f.config(&f.sessions(&secret_auth(), ""), "", &[("scopes", "[tasks:read]")]));
    let attacker = TestKey::rsa("attacker").with_kid("rsa-1");
    let access_token = f.access_token("alice");
    let cases: &[(&str, &str)] = &[
        ("wrong nonce", "the ID token's nonce is not this sign-in's"),
        ("no nonce", "the ID token's nonce is not this sign-in's"),
        ("wrong audience", "the token is not for this audience"),
        ("signed by another key under the same kid", "the token's signature is invalid"),
        ("alg none", "the ID token's algorithm is not allowed"),
        ("HS256 keyed with the RSA public key", "the ID token's algorithm is not allowed"),
        ("expired", "the token has expired"),
        ("azp of another client", "the ID token's authorized party (azp) is not this client"),
        ("several audiences without azp", "the ID token's authorized party (azp) is not this client"),
        ("at_hash of another access token", "the ID token's at_hash does not match the access token"),
        ("another issuer", "the ID token is from another issuer"),
        ("no ID token", "the identity provider sent no ID token"),
    ];
    for (case, reason) in cases {
        let started = begin(&proxy, &f.idp, "/app/");
        let mut c = f.id_claims("alice", &started.nonce);
        let issued = now();
        let id_token = match *case {
            "wrong nonce" => {
                c["nonce"] = format!("{}x", started.nonce).into();
                Some(f.rsa.sign(&c))
            }
            "no nonce" => {
                c.as_object_mut().expect("claims").remove("nonce");
                Some(f.rsa.sign(&c))
            }
            "wrong audience" => {
                c["aud"] = "another-client".into();
                Some(f.rsa.sign(&c))
            }
            "signed by another key under the same kid" => Some(attacker.sign(&c)),
            "alg none" => Some(forge(&json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}), &c, b"")),
            "HS256 keyed with the RSA public key" => {
                let public = f.rsa.public_der.as_deref().expect("an RSA key has a public DER");
                Some(forge_hs256(&json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}), &c, public))
            }
            "expired" => {
                // Past the issuer's leeway (30 s).
                c["iat"] = (issued - 7200).into();
                c["exp"] = (issued - 3600).into();
                Some(f.rsa.sign(&c))
            }
            "azp of another client" => {
                c["azp"] = "another-client".into();
                Some(f.rsa.sign(&c))
            }
            "several audiences without azp" => {
                c["aud"] = json!([CLIENT_ID, "another-client"]);
                Some(f.rsa.sign(&c))
            }
            "at_hash of another access token" => {
                c["at_hash"] = at_hash("another-access-token").into();
                Some(f.rsa.sign(&c))
            }
            "another issuer" => {
                c["iss"] = "http://issuer.example".into();
                Some(f.rsa.sign(&c))
            }
            "no ID token" => None,
            other => panic!("no such case: {other}"),
        };
        f.idp.answer_tokens(&access_token, id_token.as_deref());
        let calls_before = f.idp.calls().len();
        let answer = started.callback(&proxy);
        assert_eq!(answer.status, 401, "{case}: {}", answer.text());
        let body = answer.json();
        assert_eq!(body["error"], "sign_in_failed", "{case}: {body}");
        assert_eq!(body["error_description"], *reason, "{case}: the fixed reason");
        assert_eq!(session_cookie(&answer), None, "{case}: no session cookie: {:?}", set_cookies(&answer));
        assert_eq!(f.idp.calls().len(), calls_before + 1, "{case}: refused after the code exchange, not before");
    }
    let refused = cases.len() as f64;
    assert_eq!(sign_ins(&proxy, "failed_id_token"), refused, "{}", proxy.metrics());
    assert_eq!(sign_ins(&proxy, "completed"), 0.0);
    assert!(saw_decision(&proxy, "sign_in_failed"), "{}", proxy.metrics());
    assert_eq!(f.upstream.count(), 0, "nothing reached the upstream");

    // The same proxy and fake IdP do sign in with a good ID token: the
    // refusals above are the ID token's doing.
    let session = f.sign_in(&proxy, "alice");
    let answer = get(proxy.addr, "/app/", &[("Cookie", &session), ("Accept", "application/json")]);
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn token_endpoint_refusals_are_400_and_outages_502() {
    let f = Fixture::new();
    let proxy = f.proxy(&f.config(&f.sessions(&secret_auth(), ""), "", &[("scopes", "[tasks:read]")]));
    let refusals = [
        (400, r#"{"error":"invalid_grant","error_description":"the code was already used"}"#),
        // 200, but not a token response.
        (200, r#"{"error":"invalid_grant"}"#),
        // A token type the proxy cannot present as a bearer token.
        (200, r#"{"access_token":"a","token_type":"DPoP","id_token":"x.y.z"}"#),
    ];
    for (status, body) in refusals {
        let started = begin(&proxy, &f.idp, "/app/");
        f.idp.answer(Answer::Reply(status, body.to_owned()));
        let answer = started.callback(&proxy);
        assert_eq!(answer.status, 400, "{status} {body}: {}", answer.text());
        let json = answer.json();
        assert_eq!(json["error"], "sign_in_failed", "{json}");
        assert_eq!(json["error_description"], "the identity provider refused the authorization code");
        assert!(!answer.text().contains("already used"), "the IdP's words are not echoed: {}", answer.text());
        assert_eq!(session_cookie(&answer), None);
    }
    assert_eq!(sign_ins(&proxy, "failed_code"), 3.0, "{}", proxy.metrics());

    for (what, mode) in [("500", Answer::Reply(500, r#"{"error":"server_error"}"#.to_owned())), ("down", Answer::Drop)]
    {
        let started = begin(&proxy, &f.idp, "/app/");
        f.idp.answer(mode);
        let answer = started.callback(&proxy);
        assert_eq!(answer.status, 502, "token endpoint {what}: {}", answer.text());
        let json = answer.json();
        assert_eq!(json["error"], "sign_in_unavailable", "{json}");
        assert_eq!(session_cookie(&answer), None);
    }
    assert_eq!(sign_ins(&proxy, "failed_unavailable"), 2.0, "{}", proxy.metrics());
    assert_eq!(sign_ins(&proxy, "completed"), 0.0);
}

#[test]
fn the_callback_needs_this_sign_ins_state_and_cookie() {
    let f = Fixture::new();
    let proxy = f.proxy(&f.config(&f.sessions(&secret_auth(), ""), "", &[("scopes", "[tasks:read]")]));
    let first = begin(&proxy, &f.idp, "/app/first");
    let second = begin(&proxy, &f.idp, "/app/second");
    assert_ne!(first.cookie, second.cookie, "one sign-in cookie per sign-in");
    let access_token = f.access_token("alice");
    f.idp.answer_tokens(&access_token, Some(&f.rsa.sign(&f.id_claims("alice", &first.nonce))));

    // Altered at the end: the cookie of that name is found, and the whole
    // state compared. Altered at the start: no cookie of that name.
    let last = first.state.chars().last().expect("a state");
    let altered_end = format!("{}{}", &first.state[..first.state.len() - 1], if last == 'A' { 'B' } else { 'A' });
    let altered_start = format!("{}{}", if first.state.starts_with('A') { 'B' } else { 'A' }, &first.state[1..]);
    // The second sign-in's cookie value under the first one's name: sealed
    // for another name, it does not open.
    let first_name = first.cookie.split('=').next().expect("cookie name");
    let second_value = second.cookie.split_once('=').expect("cookie value").1;
    let swapped = format!("{first_name}={second_value}");
    let state = &first.state;
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("state altered at the end", format!("code=x&state={altered_end}"), Some(first.cookie.as_str())),
        ("state altered at the start", format!("code=x&state={altered_start}"), Some(first.cookie.as_str())),
        ("no state", "code=x".to_owned(), Some(first.cookie.as_str())),
        ("empty state", "code=x&state=".to_owned(), Some(first.cookie.as_str())),
        ("no sign-in cookie", format!("code=x&state={state}"), None),
        ("the other sign-in's cookie", format!("code=x&state={state}"), Some(second.cookie.as_str())),
        ("the other sign-in's cookie renamed", format!("code=x&state={state}"), Some(swapped.as_str())),
        ("the other sign-in's state", format!("code=x&state={}", second.state), Some(first.cookie.as_str())),
    ];
    for (case, query, cookie) in &cases {
        let answer = callback(&proxy, query, *cookie);
        assert_eq!(answer.status, 400, "{case}: {}", answer.text());
        let json = answer.json();
        assert_eq!(json["error"], "sign_in_failed", "{case}: {json}");
        assert_eq!(json["error_description"], "the sign-in is not valid or has expired; start again", "{case}");
        assert_eq!(session_cookie(&answer), None, "{case}");
    }
    assert!(f.idp.calls().is_empty(), "no code is exchanged without this sign-in's state: {:?}", f.idp.calls());
    assert_eq!(sign_ins(&proxy, "failed_state"), cases.len() as f64, "{}", proxy.metrics());

    // The IdP reporting an error, with the right state: refused, no exchange.
    let answer = callback(&proxy, &format!("error=access_denied&state={state}"), Some(first.cookie.as_str()));
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_eq!(answer.json()["error"], "sign_in_failed");
    assert!(f.idp.calls().is_empty());
    assert_eq!(sign_ins(&proxy, "failed_refused"), 1.0);
    // A callback is a GET.
    let answer = harness::client::request(proxy.addr, "POST", &format!("{CALLBACK}?code=x&state={state}"), &[], b"");
    assert_eq!(answer.status, 405, "{}", answer.text());

    // The untouched first sign-in still completes, back to its own path.
    let answer = first.callback(&proxy);
    assert_eq!(answer.status, 302, "{}", answer.text());
    assert_eq!(answer.header("location"), Some("/app/first"));
    assert!(session_cookie(&answer).is_some());
    assert_eq!(f.idp.calls().len(), 1);
}

#[test]
fn identity_from_id_token_takes_the_identity_from_its_claims_even_with_an_opaque_access_token() {
    let f = Fixture::new();
    let sessions = f.sessions(&secret_auth(), "  identity_from: id_token\n");
    let proxy = f.proxy(&f.config(&sessions, "", &[]));
    let started = begin(&proxy, &f.idp, "/app/");
    // Not a JWT, and unknown to the issuer: only the ID token says who
    // signed in.
    let opaque = "an-opaque-access-token-the-proxy-never-verifies";
    let id_token = f.rsa.sign(&f.id_claims("carol", &started.nonce));
    f.idp.answer_tokens(opaque, Some(&id_token));
    let answer = started.callback(&proxy);
    assert_eq!(answer.status, 302, "{}", answer.text());
    let session = session_cookie(&answer).expect("a session cookie");

    let answer = get(proxy.addr, "/app/", &[("Cookie", &session), ("Accept", "application/json")]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = f.upstream.last();
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("carol"));
    assert_eq!(seen.header("x-auth-email").as_deref(), Some("carol@example.com"));
    assert_eq!(seen.header("x-auth-issuer"), Some(f.keys.issuer()));
    assert_eq!(f.keys.introspection_hits(), 0, "the opaque access token is never introspected");

    // The ID token is still verified as strictly: a wrong nonce is refused.
    let started = begin(&proxy, &f.idp, "/app/");
    let forged = f.rsa.sign(&f.id_claims("mallory", "not-the-nonce"));
    f.idp.answer_tokens(opaque, Some(&forged));
    let answer = started.callback(&proxy);
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_eq!(session_cookie(&answer), None);
}

#[test]
fn private_key_jwt_authenticates_with_a_fresh_signed_assertion_and_no_secret() {
    let f = Fixture::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).expect("EC key");
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("client.pem");
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", pem_body(pkcs8.as_ref()));
    std::fs::write(&key_file, pem).expect("write the client key");
    let auth = format!("  private_key_jwt: {{key_file: \"{}\", alg: ES256, kid: k1}}\n", key_file.display());
    let proxy = f.proxy(&f.config(&f.sessions(&auth, ""), "", &[("scopes", "[tasks:read]")]));
    let public = jsonwebtoken::jwk::Jwk::from_encoding_key(
        &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        jsonwebtoken::Algorithm::ES256,
    )
    .expect("the public JWK");
    let public = jsonwebtoken::DecodingKey::from_jwk(&public).expect("a decoding key");

    let mut jtis = Vec::new();
    for _ in 0..2 {
        let session = f.sign_in(&proxy, "dave");
        let answer = get(proxy.addr, "/app/", &[("Cookie", &session), ("Accept", "application/json")]);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let call = f.idp.last_call();
        assert_eq!(call.authorization, None, "no Basic header with private_key_jwt");
        assert_eq!(call.field("client_secret"), None);
        assert_eq!(call.field("client_id"), Some(CLIENT_ID));
        assert_eq!(call.field("grant_type"), Some("authorization_code"));
        assert_eq!(call.field("client_assertion_type"), Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
        let assertion = call.field("client_assertion").expect("a client_assertion");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&[f.idp.token_endpoint()]);
        validation.set_issuer(&[CLIENT_ID]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let verified = jsonwebtoken::decode::<Value>(assertion, &public, &validation)
            .unwrap_or_else(|e| panic!("the assertion verifies with the client's public key: {e}"));
        assert_eq!(verified.header.kid.as_deref(), Some("k1"));
        let claims = verified.claims;
        assert_eq!(claims["sub"], CLIENT_ID, "about the client itself: {claims}");
        let (iat, exp) = (claims["iat"].as_u64().expect("iat"), claims["exp"].as_u64().expect("exp"));
        assert!(iat.abs_diff(now()) <= 30, "issued now: {claims}");
        assert!(exp > iat && exp <= iat + 60, "valid a minute at most: {claims}");
        let jti = claims["jti"].as_str().expect("a jti").to_owned();
        assert!(jti.len() >= 16, "{claims}");
        jtis.push(jti);
    }
    assert_ne!(jtis[0], jtis[1], "a new jti for each assertion");
}

#[test]
fn redis_sessions_are_shared_by_replicas_and_end_everywhere_at_logout() {
    let mut redis = RedisServer::start();
    let f = Fixture::new();
    let redis_section =
        format!("redis:\n  url: \"{}\"\n  hash_key_env: {HASH_ENV}\n  command_timeout: 200ms\n", redis.url());
    let sessions = f.sessions(&secret_auth(), "  store: redis\n");
    let config = f.config(&sessions, &redis_section, &[("scopes", "[tasks:read]")]);
    let (a, b) = (f.proxy(&config), f.proxy(&config));

    let session = f.sign_in(&a, "erin");
    let (_, value) = session.split_once('=').expect("name=value");
    assert!(!session.contains(';'), "one cookie, no parts: {session}");
    assert!(value.len() < 200, "only a sealed id rides in the cookie ({} bytes)", value.len());
    let stored = redis.command(&["--scan", "--pattern", "*session*"]);
    assert_eq!(stored.lines().count(), 1, "one session in Redis: {stored}");
    let entry = redis.command(&["GET", stored.trim()]);
    // Sealed: base64url, no JSON, no name.
    assert!(!entry.contains('{') && !entry.contains("erin"), "the stored session is sealed: {entry}");

    let api =
        |proxy: &Proxy, cookie: &str| get(proxy.addr, "/app/", &[("Cookie", cookie), ("Accept", "application/json")]);
    for (name, replica) in [("A", &a), ("B", &b)] {
        let answer = api(replica, &session);
        assert_eq!(answer.status, 200, "replica {name}: {}", answer.text());
        assert_eq!(f.upstream.last().header("x-auth-subject").as_deref(), Some("erin"), "replica {name}");
    }

    // Logout at A ends the session in Redis, so on B too.
    let answer = get(a.addr, "/.portcullis/logout", &[("Cookie", &session)]);
    assert_eq!(answer.status, 302, "{}", answer.text());
    assert_eq!(answer.header("location"), Some("/"));
    assert!(
        set_cookies(&answer).iter().any(|c| c.starts_with(&format!("{SESSION_COOKIE}=;")) && c.contains("Max-Age=0")),
        "{:?}",
        set_cookies(&answer)
    );
    assert_eq!(redis.command(&["--scan", "--pattern", "*session*"]), "", "the session is gone from Redis");
    for (name, replica) in [("A", &a), ("B", &b)] {
        let answer = get(replica.addr, "/app/", &[&[("Cookie", session.as_str())][..], NAVIGATION_HEADERS].concat());
        assert_eq!(answer.status, 302, "replica {name}: {}", answer.text());
        let location = answer.header("location").unwrap_or_default();
        assert!(location.starts_with(&f.idp.authorization_endpoint()), "replica {name} sends to sign in: {location}");
        let answer = api(replica, &session);
        assert_eq!(answer.status, 401, "replica {name}: {}", answer.text());
    }

    // Redis down: a session cannot be read, which is not the same as no
    // session: 503, try again shortly.
    let fresh = f.sign_in(&b, "erin");
    assert_eq!(api(&a, &fresh).status, 200);
    let forwarded = f.upstream.count();
    redis.stop();
    for (name, replica) in [("A", &a), ("B", &b)] {
        let answer = api(replica, &fresh);
        assert_eq!(answer.status, 503, "replica {name}: {}", answer.text());
        assert!(answer.header("retry-after").is_some(), "replica {name}: {:?}", answer.headers);
        assert_eq!(answer.json()["error"], "temporarily_unavailable", "replica {name}");
        assert!(saw_decision(replica, "session_unavailable"), "replica {name}: {}", replica.metrics());
    }
    assert_eq!(f.upstream.count(), forwarded, "nothing was forwarded without a readable session");

    // Nor can a new session be stored: the sign-in starts (no Redis
    // needed) but cannot complete, and no cookie stands for a session
    // that was never stored.
    let started = begin(&a, &f.idp, "/app/");
    f.idp.answer_tokens(&f.access_token("erin"), Some(&f.rsa.sign(&f.id_claims("erin", &started.nonce))));
    let answer = started.callback(&a);
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(answer.json()["error"], "sign_in_unavailable");
    assert_eq!(session_cookie(&answer), None);
    assert_eq!(sign_ins(&a, "failed_internal"), 1.0);
}
