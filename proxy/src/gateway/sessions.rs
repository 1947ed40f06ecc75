//! Browser sessions on the request path: the proxy's own paths (callback,
//! sign-in, logout), a session cookie as a credential (with the
//! same-origin rule for unsafe methods), and the redirect to sign in for a
//! browser navigation that has no session.
//!
//! Only a navigation is redirected (GET or HEAD, `Sec-Fetch-Mode:
//! navigate`, or without Fetch metadata an `Accept` naming `text/html`, and
//! no `Authorization` or `X-Requested-With`): a script's request gets the
//! usual 401, never an HTML login page it would follow blindly.

use std::sync::Arc;

use credentials::peek;
use http::Method;
use pingora::http::RequestHeader;

use super::respond::Denied;
use crate::auth::source::{CredentialKind, Presented};
use crate::auth::{digest, AuthError, Identity};
use crate::labels::{AuthPath, Outcome};
use crate::runtime::Runtime;
use crate::session::{safe_return_path, Lookup, OwnPath, SessionCredential, Sessions, SignInError};
use config::CredentialKinds;

/// The answer to a request for one of the proxy's own paths; `None` for
/// any other path.
pub(super) async fn own_path(request: &RequestHeader, runtime: &Runtime) -> Option<Denied> {
    let sessions = runtime.sessions()?;
    let which = sessions.own_path(request.uri.path())?;
    let read_only = matches!(request.method, Method::GET | Method::HEAD);
    Some(match which {
        OwnPath::Callback | OwnPath::SignIn if !read_only => Denied::bad_request(405, "only GET is allowed here"),
        OwnPath::Callback => match sessions.finish(request).await {
            Ok(redirect) => Denied::redirect(Outcome::SignedIn, redirect),
            // A callback that is not this browser's sign-in leaves its
            // pending sign-ins alone (a forged callback must not cancel
            // them); a genuine one that failed is over.
            Err(error @ SignInError::State) => {
                tracing::info!(reason = error.label(), "a sign-in did not complete");
                Denied::sign_in_failed(error)
            }
            Err(error) => {
                if error == SignInError::Client {
                    tracing::warn!(
                        reason = error.label(),
                        "the IdP refused the client credentials (client_id, secret or key)"
                    );
                } else {
                    tracing::info!(reason = error.label(), "a sign-in did not complete");
                }
                Denied::sign_in_failed(error).with_cookies(sessions.forget_sign_in(request))
            }
        },
        OwnPath::SignIn => match sessions.start_from_query(request) {
            Ok(redirect) => Denied::redirect(Outcome::SignIn, redirect),
            Err(error) => Denied::sign_in_failed(error),
        },
        OwnPath::Logout if !read_only && !same_origin(request, &sessions.settings().public_origin) => {
            Denied::cross_site()
        }
        OwnPath::Logout => Denied::redirect(Outcome::SignedOut, sessions.logout(request).await),
    })
}

/// What the request's session says.
pub(super) enum SessionAuth {
    /// No session: `cookies` expire one that ended (may be empty).
    None { cookies: Vec<String> },
    /// The session's credential, authenticated; `cookies` renew it.
    Authenticated { result: Result<Arc<Identity>, AuthError>, path: AuthPath, cookies: Vec<String> },
}

/// Authenticate the request by its session cookie, where the route
/// accepts sessions. An unsafe method must come from this origin.
pub(super) async fn authenticate(
    request: &RequestHeader,
    client: Option<std::net::IpAddr>,
    runtime: &Runtime,
    accepts: CredentialKinds,
) -> Result<SessionAuth, Denied> {
    let Some(sessions) = runtime.sessions().filter(|_| accepts.session) else {
        return Ok(SessionAuth::None { cookies: Vec::new() });
    };
    // Before the session is even opened: a cross-site request must not
    // make the proxy refresh or renew anything.
    if !is_safe(&request.method)
        && sessions.has_cookie(request)
        && !same_origin(request, &sessions.settings().public_origin)
    {
        return Err(Denied::cross_site());
    }
    let active = match sessions.lookup(request).await {
        Lookup::Absent => return Ok(SessionAuth::None { cookies: Vec::new() }),
        Lookup::Ended { reason, cookies } => {
            tracing::debug!(reason, "a session ended");
            return Ok(SessionAuth::None { cookies });
        }
        Lookup::Unavailable => return Err(Denied::session_unavailable()),
        Lookup::Active(active) => active,
    };
    let auth = runtime.auth();
    let (result, path) = match &active.credential {
        SessionCredential::AccessToken(token) => {
            let kind =
                if peek::split(token).is_ok() { CredentialKind::BearerJwt } else { CredentialKind::Introspection };
            auth.authenticate_from(Presented { kind, secret: token }, client).await
        }
        SessionCredential::Claims { claims, valid_until, session_id } => {
            let issuer = sessions.settings().issuer;
            let result = auth.identity_from_claims(issuer, claims, *valid_until, &digest(session_id));
            let path = if result.is_ok() { AuthPath::Cache } else { AuthPath::Rejected };
            (result, path)
        }
    };
    let ended = match &result {
        // Revoking a subject "before T" ends the sessions signed in before
        // T, though a refresh gives them tokens issued after it.
        Ok(identity) if auth.revoked_since(identity, active.signed_in) => true,
        Ok(_) => false,
        // The session's token is refused (revoked, or the IdP issues
        // tokens the issuer's rules do not accept): end the session too,
        // so the next navigation signs in again instead of failing forever.
        Err(_) => {
            let mut cookies = sessions.end_cookies(request);
            cookies.extend(active.cookies);
            return Ok(SessionAuth::Authenticated { result, path, cookies });
        }
    };
    if ended {
        tracing::debug!("a session of a revoked subject ended");
        return Ok(SessionAuth::None { cookies: sessions.end_cookies(request) });
    }
    Ok(SessionAuth::Authenticated { result, path, cookies: active.cookies })
}

/// No credential at all: a navigation on a `browser_login` route is sent
/// to sign in; anything else gets the usual 401. `cookies` end a session
/// that ended.
pub(super) fn no_credential(
    request: &RequestHeader,
    runtime: &Runtime,
    route: Option<usize>,
    accepts: CredentialKinds,
    cookies: Vec<String>,
) -> Denied {
    let sessions = runtime.sessions().filter(|_| runtime.browser_login(route) && is_navigation(request));
    let Some(sessions) = sessions else {
        return Denied::credential_required(runtime.challenges(), accepts).with_cookies(cookies);
    };
    match sessions.start(request, return_path(request, sessions)) {
        Ok(mut redirect) => {
            redirect.cookies.extend(cookies);
            Denied::redirect(Outcome::SignIn, redirect)
        }
        Err(error) => Denied::sign_in_failed(error).with_cookies(cookies),
    }
}

/// Where to come back to: the request's own target when it is a plain
/// path on this origin, else the site's root.
fn return_path<'r>(request: &'r RequestHeader, sessions: &Sessions) -> &'r str {
    let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
    safe_return_path(target, &sessions.settings().public_origin).unwrap_or("/")
}

/// A top-level browser navigation (see the module comment).
fn is_navigation(request: &RequestHeader) -> bool {
    if !matches!(request.method, Method::GET | Method::HEAD) {
        return false;
    }
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    if request.headers.contains_key(http::header::AUTHORIZATION) || header("x-requested-with").is_some() {
        return false;
    }
    match header("sec-fetch-mode") {
        Some(mode) => mode.eq_ignore_ascii_case("navigate"),
        None => header("accept").is_some_and(|accept| {
            accept
                .split(',')
                .any(|item| item.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html")))
        }),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Whether the request says it comes from `origin`: `Sec-Fetch-Site:
/// same-origin` (Fetch metadata, sent by every current browser), or
/// without it an `Origin` equal to ours. Neither: not from a page of ours.
fn same_origin(request: &RequestHeader, origin: &str) -> bool {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    match header("sec-fetch-site") {
        Some(site) => site.eq_ignore_ascii_case("same-origin"),
        None => header("origin").is_some_and(|sent| sent.eq_ignore_ascii_case(origin)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build(method, b"/app/", None).expect("request");
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).expect("header");
        }
        request
    }

    #[test]
    fn only_navigations_are_sent_to_sign_in() {
        assert!(is_navigation(&request("GET", &[("sec-fetch-mode", "navigate"), ("accept", "*/*")])));
        assert!(is_navigation(&request("GET", &[("accept", "text/html,application/xhtml+xml")])));
        assert!(is_navigation(&request("HEAD", &[("accept", "text/html")])));
        for (method, headers) in [
            ("GET", vec![("sec-fetch-mode", "cors"), ("accept", "text/html")]),
            ("GET", vec![("accept", "application/json")]),
            ("GET", vec![]),
            ("POST", vec![("sec-fetch-mode", "navigate"), ("accept", "text/html")]),
            ("GET", vec![("accept", "text/html"), ("x-requested-with", "XMLHttpRequest")]),
            ("GET", vec![("accept", "text/html"), ("authorization", "Bearer x")]),
        ] {
            assert!(!is_navigation(&request(method, &headers)), "{method} {headers:?}");
        }
    }

    #[test]
    fn unsafe_requests_must_come_from_this_origin() {
        let origin = "https://app.example.com";
        assert!(same_origin(&request("POST", &[("sec-fetch-site", "same-origin")]), origin));
        assert!(same_origin(&request("POST", &[("origin", "https://app.example.com")]), origin));
        for headers in [
            vec![("sec-fetch-site", "cross-site"), ("origin", "https://app.example.com")],
            vec![("sec-fetch-site", "same-site")],
            vec![("origin", "https://evil.example")],
            vec![("origin", "null")],
            vec![],
        ] {
            assert!(!same_origin(&request("POST", &headers), origin), "{headers:?}");
        }
    }
}
