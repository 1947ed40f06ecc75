//! Browser sign-in against the real OpenID provider (`oidc-provider`, its
//! development sign-in page): a real Chromium signs in, reloads and logs
//! out; an HTTP agent that keeps cookies like a browser runs the attacks
//! (state, replayed codes, cookies tampered with, expired or sealed with a
//! removed key, open redirects, cross-site requests, script requests) and
//! the key rotation and refresh rules.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use harness::client::Response;
use harness::oidc::{OidcProvider, ProviderOptions, TODO_API, WEB_CLIENT_ID, WEB_CLIENT_SECRET};
use harness::proxy::{Proxy, ProxyOptions, PROXY_PORT};
use harness::servers::Upstream;
use harness::signin::{is_sign_in_page, Agent, Url, NAVIGATION_HEADERS};
use harness::wait_until;
use harness::webdriver::WebDriver;

const COOKIE: &str = "__Host-portcullis";
const WAIT: Duration = Duration::from_secs(20);

fn key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

/// The environment every proxy here starts with: the client secret and
/// three key lists for the rotation test (A; B then A; B).
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("WEB_SECRET", WEB_CLIENT_SECRET.to_owned()),
        ("KEYS_A", key(1)),
        ("KEYS_B_A", format!("{},{}", key(2), key(1))),
        ("KEYS_B", key(2)),
    ]
}

/// A proxy in front of `upstream` that signs browsers in at `provider`.
/// `host` is how browsers reach it (`127.0.0.1` or `localhost`); `cookie`
/// is the `cookie:` mapping.
fn config(provider: &OidcProvider, upstream: &Upstream, host: &str, cookie: &str) -> String {
    format!(
        r#"threads: 2
upstreams:
  api:
    url: "{upstream}"
issuers:
  - name: idp
    issuer: "{issuer}"
    audiences: ["todo-api"]
    algorithms: ["RS256", "ES256"]
    min_refresh_interval: 1s
identity_headers:
  X-Auth-Subject: sub
  X-Auth-Scopes: scopes
sessions:
  issuer: idp
  public_url: "http://{host}:{PROXY_PORT}"
  client_id: {WEB_CLIENT_ID}
  client_secret_env: WEB_SECRET
  scopes: [openid, email, "tasks:read"]
  authorize_params: {{resource: "{TODO_API}"}}
  post_logout_path: /signed-out
  cookie: {cookie}
routes:
  - path: /signed-out
    public: true
  - path: /app/**
    browser_login: true
    scopes: ["tasks:read"]
  - path: /app-admin/**
    browser_login: true
    scopes: [admin]
  - path: /api/**
    scopes: ["tasks:read"]
"#,
        upstream = upstream.url(),
        issuer = provider.issuer,
    )
}

fn start(provider: &OidcProvider, upstream: &Upstream, host: &str, cookie: &str) -> Proxy {
    let config = config(provider, upstream, host, cookie);
    let env = env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Proxy::start_with(ProxyOptions { config: &config, env: &env, wait_ready: true })
}

struct Setup {
    provider: OidcProvider,
    upstream: Upstream,
    proxy: Proxy,
    base: String,
}

fn setup(cookie: &str) -> Setup {
    setup_with(ProviderOptions::default(), cookie)
}

fn setup_with(options: ProviderOptions, cookie: &str) -> Setup {
    let provider = OidcProvider::start_with(options);
    let upstream = Upstream::start("api");
    let proxy = start(&provider, &upstream, "127.0.0.1", cookie);
    let base = format!("http://{}", proxy.addr);
    Setup { provider, upstream, proxy, base }
}

const KEYS_A: &str = "{key_env: KEYS_A}";

impl Setup {
    /// A browser-like agent signed in as `login` on `/app/`.
    fn signed_in(&self, login: &str) -> Agent {
        let mut agent = Agent::new();
        let (response, visited) = agent.navigate_and_sign_in(&format!("{}/app/", self.base), login);
        assert_eq!(response.status, 200, "{visited:?}\n{}", response.text());
        assert_eq!(visited.last().map(String::as_str), Some(format!("{}/app/", self.base).as_str()), "{visited:?}");
        assert!(agent.cookie(&self.host(), COOKIE).is_some(), "no session cookie: {visited:?}");
        agent
    }

    fn host(&self) -> String {
        self.proxy.addr.to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn metric(&self, series: &str) -> f64 {
        self.proxy.metric(series).unwrap_or(0.0)
    }
}

/// The answer is the redirect to the IdP's authorization endpoint.
fn assert_sent_to_sign_in(provider: &OidcProvider, response: &Response) {
    assert_eq!(response.status, 302, "{}", response.text());
    let location = response.header("location").unwrap_or_default();
    assert!(location.starts_with(&provider.authorization_endpoint()), "{location}");
}

/// The answer expires the session cookie.
fn expires_session(response: &Response) -> bool {
    response.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("set-cookie")
            && value.starts_with(&format!("{COOKIE}=;"))
            && value.contains("Max-Age=0")
    })
}

#[test]
fn a_browser_signs_in_reloads_and_logs_out() {
    let provider = OidcProvider::start();
    let upstream = Upstream::start("api");
    // `localhost`, so that the IdP (127.0.0.1) is another site, as in
    // production: the SameSite=Lax cookies must survive the round trip.
    let proxy = start(&provider, &upstream, "localhost", KEYS_A);
    let base = format!("http://localhost:{}", proxy.addr.port());
    let driver = WebDriver::start();

    driver.goto(&format!("{base}/app/"));
    driver.wait_for("input[name=login]", WAIT).send_keys("alice");
    driver.find("input[name=password]").send_keys("correct horse battery staple");
    driver.find("button[type=submit]").click();
    let landed = driver.wait_for_url(|url| url.starts_with(&base), WAIT);
    assert_eq!(landed, format!("{base}/app/"));
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("alice"));
    assert!(seen.header("x-auth-scopes").is_some_and(|s| s.split(' ').any(|s| s == "tasks:read")));
    // The sealed session is the proxy's business, not the upstream's.
    assert!(!seen.header("cookie").unwrap_or_default().contains(COOKIE), "{:?}", seen.header("cookie"));
    let cookie = driver.cookie(COOKIE).expect("the session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["secure"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Lax", "{cookie}");

    // A reload is served from the session: no new sign-in.
    let started = proxy.metric("portcullis_sign_ins_total{result=\"started\"}");
    let before = upstream.count();
    driver.refresh();
    assert_eq!(driver.current_url(), format!("{base}/app/"));
    assert!(wait_until(WAIT, || upstream.count() == before + 1), "the reload did not reach the upstream");
    assert_eq!(proxy.metric("portcullis_sign_ins_total{result=\"started\"}"), started);
    assert_eq!(proxy.metric("portcullis_sign_ins_total{result=\"completed\"}"), Some(1.0));

    // Logout ends the session here and at the IdP, and lands on the
    // post-logout path.
    driver.goto(&format!("{base}/.portcullis/logout"));
    driver.wait_for_url(|url| url == format!("{base}/signed-out"), WAIT);
    assert!(driver.cookie(COOKIE).is_none(), "the session cookie is gone");
    assert_eq!(proxy.metric("portcullis_logouts_total"), Some(1.0));
    // Signed out at the IdP too: the next visit asks for a login again.
    driver.goto(&format!("{base}/app/"));
    driver.wait_for("input[name=login]", WAIT);
    assert!(driver.current_url().starts_with(&provider.issuer), "{}", driver.current_url());
}

#[test]
fn only_navigations_are_sent_to_sign_in_and_scripts_get_401() {
    let s = setup(KEYS_A);
    let mut agent = Agent::new();
    let app = s.url("/app/data");
    assert_sent_to_sign_in(&s.provider, &agent.get(&app, NAVIGATION_HEADERS));
    assert_sent_to_sign_in(&s.provider, &agent.get(&app, &[("Accept", "text/html,*/*;q=0.8")]));
    for headers in [
        vec![("Accept", "application/json")],
        vec![("Accept", "*/*")],
        vec![("Accept", "text/html"), ("Sec-Fetch-Mode", "cors")],
        vec![("Accept", "text/html"), ("X-Requested-With", "XMLHttpRequest")],
        vec![("Accept", "text/html"), ("Authorization", "Bearer not-a-token")],
    ] {
        let response = agent.get(&app, &headers);
        assert_eq!(response.status, 401, "{headers:?}: {}", response.text());
        assert!(response.header("location").is_none(), "{headers:?}");
        assert!(response.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")), "{headers:?}");
    }
    // One sign-in cookie per sign-in started, four at most: a fifth ends
    // the others (prefetches must not fill the Cookie header).
    let pending = |agent: &Agent| {
        agent.cookies(&s.host()).iter().filter(|(name, _)| name.starts_with(&format!("{COOKIE}-signin-"))).count()
    };
    assert_eq!(pending(&agent), 2);
    for _ in 0..2 {
        agent.get(&app, NAVIGATION_HEADERS);
    }
    assert_eq!(pending(&agent), 4);
    agent.get(&app, NAVIGATION_HEADERS);
    assert_eq!(pending(&agent), 1);
    let post = agent.request("POST", &app, NAVIGATION_HEADERS, b"x=1");
    assert_eq!(post.status, 401, "a form POST is not sent to sign in: {}", post.text());
    // Routes without browser_login never redirect.
    assert_eq!(agent.get(&s.url("/api/x"), NAVIGATION_HEADERS).status, 401);
    assert_eq!(s.upstream.count(), 0);
}

#[test]
fn a_session_authorises_by_its_scopes_and_only_where_sessions_are_accepted() {
    let s = setup(KEYS_A);
    let mut agent = s.signed_in("alice");
    let data = agent.get(&s.url("/app/data"), &[("Accept", "application/json")]);
    assert_eq!(data.status, 200, "a script of the signed-in app is authorised: {}", data.text());
    // Spoofed identity headers never reach the upstream.
    let spoofed = agent.get(&s.url("/app/x"), &[("Accept", "application/json"), ("X-Auth-Subject", "root")]);
    assert_eq!(spoofed.status, 200);
    assert_eq!(s.upstream.last().header("x-auth-subject").as_deref(), Some("alice"));
    // The access token lacks admin: 403 insufficient_scope, not a redirect.
    let admin = agent.get(&s.url("/app-admin/"), NAVIGATION_HEADERS);
    assert_eq!(admin.status, 403, "{}", admin.text());
    // The cookie is no credential on a route that does not accept sessions.
    assert_eq!(agent.get(&s.url("/api/x"), &[]).status, 401);
}

#[test]
fn a_cross_site_request_with_a_session_cookie_is_refused() {
    let s = setup(KEYS_A);
    let mut agent = s.signed_in("alice");
    let origin = s.base.clone();
    let count = s.upstream.count();
    for headers in [
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site"), ("Origin", origin.as_str())],
        vec![("Sec-Fetch-Site", "same-site")],
        // Neither header: not a page of this origin.
        vec![],
    ] {
        let response = agent.request("POST", &s.url("/app/transfer"), &headers, b"amount=100");
        assert_eq!(response.status, 403, "{headers:?}: {}", response.text());
        assert_eq!(response.json()["error"], "cross_site_request");
    }
    assert_eq!(s.upstream.count(), count, "nothing cross-site reached the upstream");
    for headers in [vec![("Origin", origin.as_str())], vec![("Sec-Fetch-Site", "same-origin")]] {
        let response = agent.request("POST", &s.url("/app/transfer"), &headers, b"amount=100");
        assert_eq!(response.status, 200, "{headers:?}: {}", response.text());
        assert_eq!(s.upstream.last().method, "POST");
    }
    assert!(s.metric("portcullis_requests_total{decision=\"cross_site_refused\",route=\"/app/**\"}") >= 5.0);
}

#[test]
fn tampered_and_truncated_session_cookies_end_the_session() {
    let s = setup(KEYS_A);
    let agent = s.signed_in("alice");
    let good = agent.cookie(&s.host(), COOKIE).expect("session");
    let middle = good.len() / 2;
    let flipped = if &good[middle..=middle] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &good[..middle], &good[middle + 1..]);
    for bad in [tampered, good[..good.len() - 10].to_owned(), "garbage".to_owned(), String::new()] {
        let mut attacker = Agent::new();
        attacker.set_cookie(&s.host(), COOKIE, &bad);
        let navigation = attacker.get(&s.url("/app/"), NAVIGATION_HEADERS);
        assert_sent_to_sign_in(&s.provider, &navigation);
        assert!(expires_session(&navigation) || bad.is_empty(), "the bad cookie is expired: {:?}", navigation.headers);
        attacker.set_cookie(&s.host(), COOKIE, &bad);
        let api = attacker.get(&s.url("/app/data"), &[("Accept", "application/json")]);
        assert_eq!(api.status, 401, "{}", api.text());
    }
    // The genuine cookie still works.
    let mut browser = Agent::new();
    browser.set_cookie(&s.host(), COOKIE, &good);
    assert_eq!(browser.get(&s.url("/app/"), NAVIGATION_HEADERS).status, 200);
}

#[test]
fn key_rotation_keeps_sessions_until_the_old_key_is_removed() {
    let s = setup(KEYS_A);
    let sealed_with_a = s.signed_in("alice").cookie(&s.host(), COOKIE).expect("session");
    let with_cookie = |value: &str| {
        let mut agent = Agent::new();
        agent.set_cookie(&s.host(), COOKIE, value);
        agent.get(&s.url("/app/"), NAVIGATION_HEADERS)
    };
    let reload = |keys: &str| {
        let before = s.metric("portcullis_config_generation");
        s.proxy.rewrite_config(&config(&s.provider, &s.upstream, "127.0.0.1", keys));
        let applied = wait_until(WAIT, || s.metric("portcullis_config_generation") > before);
        assert!(applied, "reload to {keys} did not apply:\n{}", s.proxy.logs());
    };

    // A new key first, the old one kept: old sessions open, new ones are
    // sealed with the new key.
    reload("{key_env: KEYS_B_A}");
    assert_eq!(with_cookie(&sealed_with_a).status, 200);
    let sealed_with_b = s.signed_in("bob").cookie(&s.host(), COOKIE).expect("session");

    // The old key removed: its sessions end, the new key's stay.
    reload("{key_env: KEYS_B}");
    let ended = with_cookie(&sealed_with_a);
    assert_sent_to_sign_in(&s.provider, &ended);
    assert!(expires_session(&ended));
    let kept = with_cookie(&sealed_with_b);
    assert_eq!(kept.status, 200, "{} {:?}\n{}", kept.text(), kept.headers, s.proxy.logs());
    assert_eq!(s.upstream.last().header("x-auth-subject").as_deref(), Some("bob"));
}

#[test]
fn sessions_end_at_max_age_and_after_the_idle_timeout() {
    for cookie in ["{key_env: KEYS_A, max_age: 3s}", "{key_env: KEYS_A, idle_timeout: 3s}"] {
        let s = setup(cookie);
        let mut agent = s.signed_in("alice");
        assert_eq!(agent.get(&s.url("/app/"), NAVIGATION_HEADERS).status, 200, "{cookie}");
        std::thread::sleep(Duration::from_millis(3500));
        let ended = agent.get(&s.url("/app/"), NAVIGATION_HEADERS);
        assert_sent_to_sign_in(&s.provider, &ended);
        assert!(expires_session(&ended), "{cookie}");
    }
}

#[test]
fn open_redirects_are_refused() {
    let s = setup(KEYS_A);
    let mut agent = Agent::new();
    for rd in [
        "//evil.example",
        "//evil.example/app/",
        "/\\evil.example",
        "https://evil.example/",
        "http:evil.example",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%09%2Fevil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
        "evil.example",
    ] {
        let response = agent.get(&s.url(&format!("/.portcullis/sign_in?rd={rd}")), NAVIGATION_HEADERS);
        assert_eq!(response.status, 400, "rd={rd}: {}", response.text());
        assert!(response.header("location").is_none(), "rd={rd}");
    }
    assert!(s.metric("portcullis_sign_ins_total{result=\"failed_return_path\"}") >= 13.0);

    // A path of this site comes back exactly, query included.
    let (response, visited) =
        agent.navigate_and_sign_in(&s.url("/.portcullis/sign_in?rd=%2Fapp%2Fpage%3Fx%3D1"), "alice");
    assert_eq!(response.status, 200, "{visited:?}");
    assert_eq!(visited.last(), Some(&s.url("/app/page?x=1")), "{visited:?}");
    // A navigation to a target that a browser would read as another host
    // comes back to the root, never to that host.
    let mut other = Agent::new();
    let raw = other.request("GET", &format!("{}//evil.example/app/", s.base), NAVIGATION_HEADERS, b"");
    assert!(raw.status == 302 || raw.status == 400 || raw.status == 401, "{}", raw.status);
    if raw.status == 302 {
        assert_sent_to_sign_in(&s.provider, &raw);
    }
}

#[test]
fn wrong_state_missing_state_and_a_replayed_code_are_refused() {
    let s = setup(KEYS_A);
    let mut agent = Agent::new();
    // Up to the IdP's answer: the browser is sent back with a code.
    let start = agent.get(&s.url("/app/"), NAVIGATION_HEADERS);
    assert_sent_to_sign_in(&s.provider, &start);
    let authorize = start.header("location").expect("location").to_owned();
    let (page, visited) = agent.follow(&authorize, NAVIGATION_HEADERS, 5);
    assert!(is_sign_in_page(&page), "{visited:?}");
    let (mut here, mut response) = agent.sign_in_at_idp(visited.last().expect("page"), &page, "alice");
    let callback = loop {
        let location = response.header("location").expect("a redirect back").to_owned();
        let next = Url::parse(&here).join(&location);
        if next.starts_with(&s.url("/.portcullis/callback")) {
            break next;
        }
        response = agent.get(&next, NAVIGATION_HEADERS);
        here = next;
    };
    let state = harness::signin::query_param(&callback, "state").expect("state");
    let code = harness::signin::query_param(&callback, "code").expect("code");
    let sign_in_cookie: Vec<(String, String)> = agent
        .cookies(&s.host())
        .into_iter()
        .filter(|(name, _)| name.starts_with(&format!("{COOKIE}-signin-")))
        .collect();
    assert_eq!(sign_in_cookie.len(), 1, "one sign-in cookie, named after its state");

    let refused = |agent: &mut Agent, query: &str| {
        let response = agent.get(&s.url(&format!("/.portcullis/callback?{query}")), NAVIGATION_HEADERS);
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert_eq!(response.json()["error"], "sign_in_failed");
        assert!(agent.cookie(&s.host(), COOKIE).is_none(), "no session from {query}");
    };
    let tampered = format!("{}x", &state[..state.len() - 1]);
    refused(&mut agent, &format!("code={code}&state={tampered}"));
    refused(&mut agent, &format!("code={code}"));
    refused(&mut agent, &format!("code={code}&state="));
    // Without the sign-in cookie (another browser holding a stolen URL).
    let mut thief = Agent::new();
    refused(&mut thief, &format!("code={code}&state={state}"));

    // The genuine callback signs in, once.
    let done = agent.get(&callback, NAVIGATION_HEADERS);
    assert_eq!(done.status, 302, "{}", done.text());
    assert_eq!(done.header("location"), Some("/app/"));
    assert!(agent.cookie(&s.host(), COOKIE).is_some());
    // Replayed with the sign-in cookie put back: the IdP refuses the code.
    let mut replay = Agent::new();
    for (name, value) in &sign_in_cookie {
        replay.set_cookie(&s.host(), name, value);
    }
    refused(&mut replay, &format!("code={code}&state={state}"));
    assert!(s.metric("portcullis_sign_ins_total{result=\"failed_code\"}") >= 1.0);
    assert!(s.metric("portcullis_sign_ins_total{result=\"failed_state\"}") >= 4.0);
}

#[test]
fn the_access_token_is_refreshed_once_per_session_before_it_expires() {
    // Access tokens live 10 s; a session refreshes half-way through so
    // short a life (30 s before expiry for longer ones).
    let s = setup_with(ProviderOptions { ttl_seconds: 10, ..ProviderOptions::default() }, KEYS_A);
    let agent = s.signed_in("alice");
    let cookie = agent.cookie(&s.host(), COOKIE).expect("session");
    let fresh = agent.clone().get(&s.url("/app/data"), &[("Accept", "application/json")]);
    assert_eq!(fresh.status, 200);
    assert_eq!(s.metric("portcullis_session_refreshes_total{result=\"ok\"}"), 0.0, "not due yet");
    std::thread::sleep(Duration::from_secs(6));
    // Several requests with the same, due cookie at once: one refresh
    // (the IdP rotates refresh tokens, so a second would fail).
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let mut agent = Agent::new();
                agent.set_cookie(&s.host(), COOKIE, &cookie);
                let url = s.url("/app/data");
                scope.spawn(move || agent.get(&url, &[("Accept", "application/json")]))
            })
            .collect();
        tasks.into_iter().map(|t| t.join().expect("request")).collect()
    });
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text());
        let renewed = answer
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with(&format!("{COOKIE}=")));
        assert!(renewed, "each answer carries the refreshed session");
        assert_eq!(answer.header("cache-control"), Some("private, no-store"), "no shared cache keeps a session");
    }
    assert_eq!(s.metric("portcullis_session_refreshes_total{result=\"ok\"}"), 1.0);
    assert_eq!(s.metric("portcullis_session_refreshes_total{result=\"refused\"}"), 0.0);
}

/// The IdP ends the user's grant (here: the user signs out at the IdP
/// directly, which revokes the refresh token): the next refresh is
/// refused and the session ends, so the browser signs in again.
#[test]
fn a_refused_refresh_ends_the_session() {
    let s = setup_with(ProviderOptions { ttl_seconds: 10, ..ProviderOptions::default() }, KEYS_A);
    let mut agent = s.signed_in("alice");
    assert_eq!(agent.get(&s.url("/app/"), NAVIGATION_HEADERS).status, 200);
    // Sign out at the IdP itself (its confirmation page submits itself).
    let (_, visited) = agent.navigate(&s.provider.end_session_endpoint());
    assert!(!visited.is_empty());
    std::thread::sleep(Duration::from_secs(6));
    let api = agent.clone().get(&s.url("/app/data"), &[("Accept", "application/json")]);
    assert_eq!(api.status, 401, "{}", api.text());
    assert!(expires_session(&api), "the ended session's cookie is expired");
    assert_eq!(s.metric("portcullis_session_refreshes_total{result=\"refused\"}"), 1.0);
    assert_sent_to_sign_in(&s.provider, &agent.get(&s.url("/app/"), NAVIGATION_HEADERS));
}

/// Codes, tokens, cookie values and keys never reach a log line.
#[test]
fn nothing_secret_is_logged() {
    let s = setup(KEYS_A);
    let mut agent = Agent::new();
    let start = agent.get(&s.url("/app/"), NAVIGATION_HEADERS);
    let state = harness::signin::query_param(start.header("location").unwrap_or_default(), "state").expect("state");
    let (response, visited) = agent.navigate_and_sign_in(&s.url("/app/"), "alice");
    assert_eq!(response.status, 200, "{visited:?}");
    let callback = visited.iter().find(|url| url.contains("/.portcullis/callback")).expect("the callback");
    let code = harness::signin::query_param(callback, "code").expect("code");
    let cookie = agent.cookie(&s.host(), COOKIE).expect("session");
    // A tampered cookie and a failed callback are logged too, by reason.
    agent.set_cookie(&s.host(), COOKIE, &format!("{}x", &cookie[..cookie.len() - 1]));
    agent.get(&s.url("/app/"), NAVIGATION_HEADERS);
    agent.get(&s.url(&format!("/.portcullis/callback?code={code}&state={state}")), NAVIGATION_HEADERS);
    std::thread::sleep(Duration::from_millis(300));
    let logs = s.proxy.logs();
    assert!(logs.contains("decision=\"signed_in\""), "the sign-in is logged:\n{logs}");
    for (what, secret) in
        [("code", code.as_str()), ("cookie", &cookie[..40]), ("state", state.as_str()), ("key", &key(1))]
    {
        assert!(!logs.contains(secret), "the {what} is in the log:\n{logs}");
    }
}
