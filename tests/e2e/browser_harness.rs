//! The sign-in tooling itself, against the test IdP alone (no proxy):
//! headless Chromium through chromedriver ([`harness::webdriver`]) and the
//! HTTP-only agent ([`harness::signin`]) sign in on the IdP's real
//! development sign-in page, and the code exchange gives what the proxy's
//! browser sign-in relies on: an ID token for the user, a `todo-api` JWT
//! access token, and a refresh token that rotates. RP-initiated logout
//! lands back on the post-logout URI without a question.

use std::time::Duration;

use harness::client::Response;
use harness::keys::{jwks, TestKey};
use harness::oidc::{
    basic_auth, client_assertion, jwt_payload, pkce, random_string, OidcProvider, ProviderOptions, CALLBACK_PATH,
    JWT_BEARER_ASSERTION, TODO_API, WEB_CLIENT_ID, WEB_CLIENT_SECRET, WEB_JWT_CLIENT_ID,
};
use harness::servers::Upstream;
use harness::signin::{is_sign_in_page, query_param, Agent, Url, NAVIGATION_HEADERS};
use harness::webdriver::WebDriver;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// One authorization request and what its answer must match.
struct Flow {
    client_id: &'static str,
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    url: String,
}

/// An authorization request for `tasks:read` on the todo API, redirecting
/// to `callback` by `host` (`127.0.0.1` or `localhost`).
fn authorization(provider: &OidcProvider, client_id: &'static str, callback: &Upstream, host: &str) -> Flow {
    let (verifier, challenge) = pkce();
    let (state, nonce) = (random_string(), random_string());
    let redirect_uri = format!("http://{host}:{}{CALLBACK_PATH}", callback.addr.port());
    let url = provider.authorization_url(&[
        ("client_id", client_id),
        ("response_type", "code"),
        ("scope", "openid email profile tasks:read"),
        ("resource", TODO_API),
        ("redirect_uri", &redirect_uri),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    Flow { client_id, state, nonce, verifier, redirect_uri, url }
}

/// The `code` the callback received last, after checking the rest of the
/// authorization response.
fn code_from(callback: &Upstream, provider: &OidcProvider, flow: &Flow) -> String {
    let received = callback_hits(callback, CALLBACK_PATH).pop().expect("the callback was never called");
    assert_eq!(received.method, "GET");
    assert!(received.target.starts_with(&format!("{CALLBACK_PATH}?")), "{}", received.target);
    assert_eq!(query_param(&received.target, "state").as_deref(), Some(flow.state.as_str()), "{}", received.target);
    // RFC 9207: the issuer comes with the code.
    assert_eq!(query_param(&received.target, "iss").as_deref(), Some(provider.issuer.as_str()));
    query_param(&received.target, "code").unwrap_or_else(|| panic!("no code in {}", received.target))
}

/// The callback's requests for `path` (a browser also asks for
/// `/favicon.ico`).
fn callback_hits(callback: &Upstream, path: &str) -> Vec<harness::servers::Received> {
    callback.received().into_iter().filter(|r| r.target.split('?').next() == Some(path)).collect()
}

/// How the web client authenticates at the token endpoint.
#[derive(Clone, Copy)]
enum ClientAuth<'a> {
    SecretBasic,
    SecretPost,
    PrivateKeyJwt(&'a TestKey),
}

fn token_call(provider: &OidcProvider, auth: ClientAuth<'_>, form: &[(&str, &str)]) -> Response {
    let mut form = form.to_vec();
    match auth {
        ClientAuth::SecretBasic => {
            let authorization = basic_auth(WEB_CLIENT_ID, WEB_CLIENT_SECRET);
            provider.token_request(&[("Authorization", &authorization)], &form)
        }
        ClientAuth::SecretPost => {
            form.extend([("client_id", WEB_CLIENT_ID), ("client_secret", WEB_CLIENT_SECRET)]);
            provider.token_request(&[], &form)
        }
        ClientAuth::PrivateKeyJwt(key) => {
            let assertion = client_assertion(key, WEB_JWT_CLIENT_ID, &provider.token_endpoint());
            form.extend([
                ("client_id", WEB_JWT_CLIENT_ID),
                ("client_assertion_type", JWT_BEARER_ASSERTION),
                ("client_assertion", &assertion),
            ]);
            provider.token_request(&[], &form)
        }
    }
}

fn exchange(provider: &OidcProvider, auth: ClientAuth<'_>, flow: &Flow, code: &str) -> Value {
    let response = token_call(
        provider,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", &flow.verifier),
            ("redirect_uri", &flow.redirect_uri),
        ],
    );
    assert_eq!(response.status, 200, "code exchange failed: {}", response.text());
    response.json()
}

fn refresh(provider: &OidcProvider, auth: ClientAuth<'_>, refresh_token: &str) -> Response {
    token_call(provider, auth, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
}

/// The access token is the todo API's JWT for `login`.
fn check_access_token(provider: &OidcProvider, tokens: &Value, login: &str, client_id: &str) {
    let access = jwt_payload(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(access["aud"], "todo-api", "{access}");
    assert_eq!(access["sub"], login, "{access}");
    assert_eq!(access["iss"], provider.issuer.as_str());
    assert_eq!(access["client_id"], client_id);
    let scope = access["scope"].as_str().expect("scope in the access token");
    assert!(scope.split(' ').any(|s| s == "tasks:read"), "{access}");
    assert!(!scope.split(' ').any(|s| s == "tasks:write"), "more than was asked for: {access}");
    assert_eq!(tokens["token_type"], "Bearer");
}

/// What a code exchange gives: checked, with the refresh token returned.
fn check_tokens(provider: &OidcProvider, tokens: &Value, flow: &Flow, login: &str) -> String {
    let id = jwt_payload(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["sub"], login, "{id}");
    assert_eq!(id["aud"], flow.client_id, "{id}");
    assert_eq!(id["iss"], provider.issuer.as_str());
    assert_eq!(id["nonce"], flow.nonce.as_str(), "{id}");
    assert_eq!(id["email"], format!("{login}@example.test"), "{id}");
    assert!(id["name"].is_string(), "{id}");
    check_access_token(provider, tokens, login, flow.client_id);
    tokens["refresh_token"].as_str().expect("a refresh token").to_owned()
}

/// Refresh once: a new access token and a new (rotated) refresh token.
fn check_refresh(provider: &OidcProvider, auth: ClientAuth<'_>, flow: &Flow, old: &Value, login: &str) -> String {
    let refresh_token = old["refresh_token"].as_str().expect("refresh_token");
    let response = refresh(provider, auth, refresh_token);
    assert_eq!(response.status, 200, "refresh failed: {}", response.text());
    let tokens = response.json();
    check_access_token(provider, &tokens, login, flow.client_id);
    assert_ne!(tokens["access_token"], old["access_token"]);
    let rotated = tokens["refresh_token"].as_str().expect("a rotated refresh token");
    assert_ne!(rotated, refresh_token, "refresh tokens rotate");
    rotated.to_owned()
}

fn assert_invalid_grant(response: &Response, why: &str) {
    assert_eq!(response.status, 400, "{why}: {}", response.text());
    assert_eq!(response.json()["error"], "invalid_grant", "{why}");
}

/// Sign in on the IdP's own page, by typing and clicking, and wait for the
/// redirect back.
fn sign_in_with_chromium(driver: &WebDriver, flow: &Flow, login: &str) -> String {
    driver.goto(&flow.url);
    driver.wait_for("input[name=login]", WAIT).send_keys(login);
    driver.find("input[name=password]").send_keys("correct horse battery staple");
    driver.find("button[type=submit]").click();
    driver.wait_for_url(|url| url.starts_with(&flow.redirect_uri), WAIT)
}

#[test]
fn chromium_signs_in_on_the_idp_page_and_the_code_gives_refreshable_tokens() {
    let provider = OidcProvider::start();
    let callback = Upstream::start("callback");
    let driver = WebDriver::start();
    let flow = authorization(&provider, WEB_CLIENT_ID, &callback, "127.0.0.1");

    let landed = sign_in_with_chromium(&driver, &flow, "alice");
    let code = code_from(&callback, &provider, &flow);
    assert_eq!(query_param(&landed, "code").as_deref(), Some(code.as_str()));
    // The page the browser is on is the callback's answer.
    let search = driver.execute("return window.location.search;", &[]);
    assert!(search.as_str().is_some_and(|s| s.contains(&code)), "{search}");
    assert!(driver.page_source().contains("callback"), "{}", driver.page_source());
    let hits = callback_hits(&callback, CALLBACK_PATH).len();
    driver.refresh();
    assert_eq!(callback_hits(&callback, CALLBACK_PATH).len(), hits + 1, "a refresh loads the page again");

    let tokens = exchange(&provider, ClientAuth::SecretBasic, &flow, &code);
    check_tokens(&provider, &tokens, &flow, "alice");
    let rotated = check_refresh(&provider, ClientAuth::SecretBasic, &flow, &tokens, "alice");
    // The code is spent.
    let again = token_call(
        &provider,
        ClientAuth::SecretBasic,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &flow.verifier),
            ("redirect_uri", &flow.redirect_uri),
        ],
    );
    assert_invalid_grant(&again, "a second exchange of one code");

    // The IdP's session cookie is the browser's (shown on an IdP page).
    driver.goto(&provider.url("/.well-known/openid-configuration"));
    let session = driver.cookie("_session").unwrap_or_else(|| panic!("no IdP session cookie: {:?}", driver.cookies()));
    assert_eq!(session["httpOnly"], true, "{session}");

    // RP-initiated logout: no question asked, straight back to the
    // post-logout URI with the state.
    let post_logout = format!("http://127.0.0.1:{}/signed-out", callback.addr.port());
    let logout_state = random_string();
    let logout = format!(
        "{}?{}",
        provider.end_session_endpoint(),
        harness::oidc::form_urlencoded(&[
            ("id_token_hint", tokens["id_token"].as_str().expect("id_token")),
            ("post_logout_redirect_uri", &post_logout),
            ("client_id", WEB_CLIENT_ID),
            ("state", &logout_state),
        ])
    );
    driver.goto(&logout);
    let after = driver.wait_for_url(|url| url.starts_with(&post_logout), WAIT);
    assert_eq!(query_param(&after, "state").as_deref(), Some(logout_state.as_str()));
    assert_eq!(callback_hits(&callback, "/signed-out").len(), 1);
    driver.goto(&provider.url("/.well-known/openid-configuration"));
    assert!(driver.cookie("_session").is_none(), "the IdP session outlived the logout: {:?}", driver.cookies());
    // Logging out revokes the grant, refresh tokens with it.
    assert_invalid_grant(&refresh(&provider, ClientAuth::SecretBasic, &rotated), "a refresh after logout");

    // Signed out: the next authorization asks to sign in again.
    let next = authorization(&provider, WEB_CLIENT_ID, &callback, "127.0.0.1");
    driver.goto(&next.url);
    driver.wait_for("input[name=login]", WAIT);
    assert!(driver.current_url().starts_with(&provider.url("/interaction/")), "{}", driver.current_url());
}

#[test]
fn chromium_signs_in_for_the_private_key_jwt_client() {
    let key = TestKey::es256("web-jwt-client");
    let provider =
        OidcProvider::start_with(ProviderOptions { client_jwks: Some(jwks(&[&key])), ..ProviderOptions::default() });
    let callback = Upstream::start("callback");
    let driver = WebDriver::start();
    let flow = authorization(&provider, WEB_JWT_CLIENT_ID, &callback, "127.0.0.1");
    sign_in_with_chromium(&driver, &flow, "alice");
    let code = code_from(&callback, &provider, &flow);

    // An assertion signed by another key is refused, and does not spend
    // the code.
    let stranger = TestKey::es256("web-jwt-client");
    let refused = token_call(
        &provider,
        ClientAuth::PrivateKeyJwt(&stranger),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &flow.verifier),
            ("redirect_uri", &flow.redirect_uri),
        ],
    );
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["error"], "invalid_client");

    let tokens = exchange(&provider, ClientAuth::PrivateKeyJwt(&key), &flow, &code);
    check_tokens(&provider, &tokens, &flow, "alice");
    let rotated = check_refresh(&provider, ClientAuth::PrivateKeyJwt(&key), &flow, &tokens, "alice");
    // Rotation: the spent refresh token is refused, and using it revokes
    // the grant, so the new one stops working too.
    let old = tokens["refresh_token"].as_str().expect("refresh_token");
    assert_invalid_grant(&refresh(&provider, ClientAuth::PrivateKeyJwt(&key), old), "a spent refresh token");
    assert_invalid_grant(
        &refresh(&provider, ClientAuth::PrivateKeyJwt(&key), &rotated),
        "a refresh token of a grant revoked for reuse",
    );
}

#[test]
fn the_http_agent_signs_in_step_by_step() {
    let provider = OidcProvider::start();
    let callback = Upstream::start("callback");
    let flow = authorization(&provider, WEB_CLIENT_ID, &callback, "127.0.0.1");
    let mut agent = Agent::new();

    // Authorization endpoint → the interaction page, and no further.
    let (page, visited) = agent.follow(&flow.url, NAVIGATION_HEADERS, 5);
    assert!(is_sign_in_page(&page), "{} {}", page.status, page.text());
    assert_eq!(visited.len(), 2, "{visited:?}");
    let page_url = visited.last().expect("the sign-in page's URL").clone();
    assert!(page_url.starts_with(&provider.url("/interaction/")), "{page_url}");
    let idp = Url::parse(&provider.issuer).host_port();
    assert!(!agent.cookie_header(&idp).is_empty(), "the IdP set no interaction cookie");

    let (action, answer) = agent.sign_in_at_idp(&page_url, &page, "bob");
    assert_eq!(action, page_url, "the dev form posts back to its own page");
    assert_eq!(answer.status, 303, "{}", answer.text());
    let resume = Url::parse(&action).join(answer.header("location").expect("location"));
    let (landed, visited) = agent.follow(&resume, NAVIGATION_HEADERS, 5);
    assert_eq!(landed.status, 200, "{}", landed.text());
    assert!(visited.last().expect("a URL").starts_with(&flow.redirect_uri), "{visited:?}");
    assert!(agent.cookie(&idp, "_session").is_some(), "no IdP session: {:?}", agent.cookies(&idp));

    let tokens = exchange(&provider, ClientAuth::SecretBasic, &flow, &code_from(&callback, &provider, &flow));
    check_tokens(&provider, &tokens, &flow, "bob");
}

#[test]
fn the_http_agent_signs_in_reuses_the_idp_session_and_signs_out() {
    let provider = OidcProvider::start();
    let callback = Upstream::start("callback");
    let idp = Url::parse(&provider.issuer).host_port();
    let mut agent = Agent::new();

    // `localhost` redirect URIs work too, on any port.
    let flow = authorization(&provider, WEB_CLIENT_ID, &callback, "localhost");
    let (landed, visited) = agent.navigate_and_sign_in(&flow.url, "carol");
    assert_eq!(landed.status, 200, "{visited:?}: {}", landed.text());
    assert!(visited.iter().any(|url| url.starts_with(&provider.url("/interaction/"))), "{visited:?}");
    assert!(visited.last().expect("a URL").starts_with(&flow.redirect_uri), "{visited:?}");
    let hit = callback_hits(&callback, CALLBACK_PATH).pop().expect("a callback");
    assert_eq!(hit.header("host"), Some(format!("localhost:{}", callback.addr.port())));
    let tokens = exchange(&provider, ClientAuth::SecretPost, &flow, &code_from(&callback, &provider, &flow));
    let refresh_token = check_tokens(&provider, &tokens, &flow, "carol");

    // Signed in at the IdP: the next authorization comes straight back.
    let second = authorization(&provider, WEB_CLIENT_ID, &callback, "127.0.0.1");
    let (_, visited) = agent.navigate(&second.url);
    assert_eq!(visited.len(), 2, "no sign-in page the second time: {visited:?}");
    let code = code_from(&callback, &provider, &second);
    check_tokens(&provider, &exchange(&provider, ClientAuth::SecretPost, &second, &code), &second, "carol");

    // Sign out; the confirmation page submits itself.
    let post_logout = format!("http://localhost:{}/signed-out?after=logout", callback.addr.port());
    let logout = format!(
        "{}?{}",
        provider.end_session_endpoint(),
        harness::oidc::form_urlencoded(&[
            ("id_token_hint", tokens["id_token"].as_str().expect("id_token")),
            ("post_logout_redirect_uri", &post_logout),
            ("client_id", WEB_CLIENT_ID),
            ("state", "bye"),
        ])
    );
    let (landed, visited) = agent.navigate(&logout);
    assert_eq!(landed.status, 200, "{visited:?}: {}", landed.text());
    assert_eq!(visited.len(), 3, "end_session, its confirmation, the post-logout URI: {visited:?}");
    assert!(visited[1].starts_with(&provider.url("/session/end/confirm")), "{visited:?}");
    assert_eq!(query_param(&visited[2], "after").as_deref(), Some("logout"));
    assert_eq!(query_param(&visited[2], "state").as_deref(), Some("bye"));
    assert!(agent.cookie(&idp, "_session").is_none(), "the IdP session cookie survived: {:?}", agent.cookies(&idp));
    assert_invalid_grant(&refresh(&provider, ClientAuth::SecretPost, &refresh_token), "a refresh after logout");

    // And the next authorization asks to sign in again.
    let third = authorization(&provider, WEB_CLIENT_ID, &callback, "127.0.0.1");
    let (page, _) = agent.navigate(&third.url);
    assert!(is_sign_in_page(&page), "{} {}", page.status, page.text());
}

#[test]
fn the_idp_refuses_what_the_web_clients_must_not_do() {
    let provider = OidcProvider::start();
    let callback = Upstream::start("callback");
    let mut agent = Agent::new();
    let flow = authorization(&provider, WEB_CLIENT_ID, &callback, "127.0.0.1");

    // Without PKCE: an error back at the redirect URI.
    let without_pkce = provider.authorization_url(&[
        ("client_id", WEB_CLIENT_ID),
        ("response_type", "code"),
        ("scope", "openid"),
        ("redirect_uri", &flow.redirect_uri),
        ("state", &flow.state),
        ("nonce", &flow.nonce),
    ]);
    let answer = agent.get(&without_pkce, NAVIGATION_HEADERS);
    let location = answer.header("location").unwrap_or_else(|| panic!("{} {}", answer.status, answer.text()));
    assert_eq!(query_param(location, "error").as_deref(), Some("invalid_request"), "{location}");

    // Another path on a loopback port, or another host: not a redirect URI.
    for redirect_uri in [
        format!("http://127.0.0.1:{}/elsewhere", callback.addr.port()),
        format!("http://127.0.0.2:{}{CALLBACK_PATH}", callback.addr.port()),
        format!("http://127.0.0.1{CALLBACK_PATH}x"),
    ] {
        let url = flow.url.replace(
            &harness::oidc::form_urlencoded(&[("redirect_uri", &flow.redirect_uri)]),
            &harness::oidc::form_urlencoded(&[("redirect_uri", &redirect_uri)]),
        );
        assert_ne!(url, flow.url);
        let answer = agent.get(&url, NAVIGATION_HEADERS);
        assert_eq!(answer.status, 400, "{redirect_uri}: {}", answer.text());
        assert!(answer.text().contains("invalid_redirect_uri"), "{redirect_uri}: {}", answer.text());
    }

    // Without the `private_key_jwt` JWKS that client does not exist.
    let jwt_flow = authorization(&provider, WEB_JWT_CLIENT_ID, &callback, "127.0.0.1");
    let answer = agent.get(&jwt_flow.url, NAVIGATION_HEADERS);
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("invalid_client"), "{}", answer.text());
}
