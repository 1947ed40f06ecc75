//! CORS at the edge: preflights answered here (never forwarded), and the
//! `Access-Control-*` headers of every answer on a route with a CORS policy,
//! the upstream's and the proxy's own refusals alike, so a browser app can
//! read why it was refused. Which origins, methods and headers are allowed
//! is decided by the pure `policy::cors`.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use policy::cors::{CorsPolicy, Preflight};

use super::respond::{Denied, Rejection};
use crate::labels::Outcome;

/// `Vary` of every answer on a CORS route: the answer depends on `Origin`.
const VARY_ORIGIN: &str = "Origin";
/// `Vary` of a preflight answer.
const VARY_PREFLIGHT: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// A CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` (Fetch).
pub(crate) struct PreflightRequest<'r> {
    origin: &'r str,
    /// The method the actual request will use; the route is found for it.
    pub(crate) method: &'r str,
    headers: Option<&'r str>,
}

/// The request's preflight, if it is one. A header that is not visible
/// ASCII makes it no preflight (it then goes through admission as an
/// ordinary `OPTIONS`).
pub(crate) fn preflight_request(request: &RequestHeader) -> Option<PreflightRequest<'_>> {
    if request.method != Method::OPTIONS {
        return None;
    }
    let origin = request.headers.get(ORIGIN)?.to_str().ok()?;
    let method = request.headers.get(ACCESS_CONTROL_REQUEST_METHOD)?.to_str().ok()?;
    let headers = match request.headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
        Some(value) => Some(value.to_str().ok()?),
        None => None,
    };
    Some(PreflightRequest { origin, method, headers })
}

/// A preflight the policy allows, answered with 204 and these headers.
#[derive(Debug)]
pub(crate) struct PreflightAnswer {
    headers: Vec<(http::HeaderName, String)>,
}

/// Decide a preflight under `policy`: the answer, or a 403 without any
/// CORS header (the browser then refuses the actual request).
pub(crate) fn decide_preflight(policy: &CorsPolicy, request: &PreflightRequest<'_>) -> Result<PreflightAnswer, Denied> {
    let why = match policy.preflight(request.origin, request.method, request.headers) {
        Preflight::Allowed => {
            let mut headers = Vec::with_capacity(6);
            if let Some(origin) = policy.allow_origin(request.origin) {
                headers.push((ACCESS_CONTROL_ALLOW_ORIGIN, origin.to_owned()));
            }
            if policy.allow_credentials() {
                headers.push((ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_owned()));
            }
            headers.push((ACCESS_CONTROL_ALLOW_METHODS, policy.allow_methods_value().to_owned()));
            if !policy.allow_headers_value().is_empty() {
                headers.push((ACCESS_CONTROL_ALLOW_HEADERS, policy.allow_headers_value().to_owned()));
            }
            if let Some(seconds) = policy.max_age_seconds() {
                headers.push((ACCESS_CONTROL_MAX_AGE, seconds.to_string()));
            }
            headers.push((VARY, VARY_PREFLIGHT.to_owned()));
            return Ok(PreflightAnswer { headers });
        }
        Preflight::OriginNotAllowed => "the origin is not allowed to call this resource",
        Preflight::MethodNotAllowed => "the method is not allowed from another origin",
        Preflight::HeaderNotAllowed => "a requested header is not allowed from another origin",
    };
    let rejection = Rejection::new(403, "cors_refused", why).header("vary", VARY_PREFLIGHT.to_owned());
    Err(Denied { outcome: Outcome::CorsRefused, rejection })
}

/// Write the preflight answer: 204, no body.
pub(crate) async fn send_preflight(session: &mut Session, answer: &PreflightAnswer) -> pingora::Result<()> {
    let mut header = super::rejection::own_answer(204, answer.headers.len())?;
    for (name, value) in &answer.headers {
        header.insert_header(name, value.as_str())?;
    }
    session.write_response_header(Box::new(header), true).await
}

/// The request's `Origin`, if it has one a policy could allow.
fn origin(request: &RequestHeader) -> Option<&str> {
    request.headers.get(ORIGIN).and_then(|value| value.to_str().ok())
}

/// CORS headers on one of the proxy's own answers (401, 403, 429, 502…):
/// the allowed origin, and the headers that say why exposed to the script.
pub(crate) fn on_refusal(policy: Option<&CorsPolicy>, request: &RequestHeader, rejection: &mut Rejection) {
    let Some(policy) = policy else { return };
    if rejection.headers.iter().all(|(name, _)| *name != "vary") {
        rejection.headers.push(("vary", VARY_ORIGIN.to_owned()));
    }
    let Some(allowed) = origin(request).and_then(|origin| policy.allow_origin(origin)) else { return };
    rejection.headers.push(("access-control-allow-origin", allowed.to_owned()));
    if policy.allow_credentials() {
        rejection.headers.push(("access-control-allow-credentials", "true".to_owned()));
    }
    rejection.headers.push(("access-control-expose-headers", policy.expose_on_refusal_value().to_owned()));
}

/// Every CORS response header; the upstream's are replaced, never merged
/// with the proxy's (two `Access-Control-Allow-Origin` values fail in the
/// browser, and an upstream's `*` must not widen the operator's policy).
const CORS_RESPONSE_HEADERS: [&str; 7] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-allow-private-network",
];

/// CORS headers on the upstream's answer under `policy`.
pub(crate) fn on_upstream_response(
    policy: &CorsPolicy,
    request: &RequestHeader,
    response: &mut ResponseHeader,
) -> pingora::Result<()> {
    for name in CORS_RESPONSE_HEADERS {
        response.remove_header(name);
    }
    let varies = response.headers.get_all(VARY).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|item| matches!(item.trim(), "*") || item.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !varies {
        response.append_header(VARY, VARY_ORIGIN)?;
    }
    let Some(allowed) = origin(request).and_then(|origin| policy.allow_origin(origin)) else { return Ok(()) };
    response.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, allowed)?;
    if policy.allow_credentials() {
        response.insert_header(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
    }
    if !policy.expose_headers_value().is_empty() {
        response.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, policy.expose_headers_value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::cors::{CorsSpec, OriginPattern};

    fn policy() -> CorsPolicy {
        CorsPolicy::new(CorsSpec {
            origins: vec![OriginPattern::parse("https://app.example.com").unwrap()],
            methods: vec!["GET".into(), "PUT".into()],
            allow_headers: vec!["authorization".into()],
            expose_headers: vec!["x-request-id".into()],
            allow_credentials: true,
            max_age_seconds: Some(600),
        })
        .unwrap()
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build(method, b"/api/x", None).unwrap();
        for (name, value) in headers {
            request.insert_header(name.to_string(), *value).unwrap();
        }
        request
    }

    fn value<'a>(headers: &'a [(http::HeaderName, String)], name: &http::HeaderName) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn only_options_with_origin_and_request_method_is_a_preflight() {
        let origin = ("origin", "https://app.example.com");
        let method = ("access-control-request-method", "PUT");
        assert!(preflight_request(&request("OPTIONS", &[origin, method])).is_some());
        assert!(preflight_request(&request("OPTIONS", &[origin])).is_none());
        assert!(preflight_request(&request("OPTIONS", &[method])).is_none());
        assert!(preflight_request(&request("PUT", &[origin, method])).is_none());
    }

    #[test]
    fn an_allowed_preflight_gets_the_policy_and_a_refused_one_no_cors_header() {
        let req = request(
            "OPTIONS",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "authorization"),
            ],
        );
        let answer = decide_preflight(&policy(), &preflight_request(&req).unwrap()).unwrap();
        assert_eq!(value(&answer.headers, &ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://app.example.com"));
        assert_eq!(value(&answer.headers, &ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
        assert_eq!(value(&answer.headers, &ACCESS_CONTROL_ALLOW_METHODS), Some("GET, PUT"));
        assert_eq!(value(&answer.headers, &ACCESS_CONTROL_ALLOW_HEADERS), Some("authorization"));
        assert_eq!(value(&answer.headers, &ACCESS_CONTROL_MAX_AGE), Some("600"));

        let evil = request("OPTIONS", &[("origin", "https://evil.example"), ("access-control-request-method", "PUT")]);
        let denied = decide_preflight(&policy(), &preflight_request(&evil).unwrap()).unwrap_err();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::CorsRefused, 403));
        assert!(denied.rejection.headers.iter().all(|(name, _)| !name.starts_with("access-control")));
    }

    #[test]
    fn refusals_carry_cors_headers_for_allowed_origins_only() {
        let mut rejection = Rejection::new(401, "unauthorized", "x");
        on_refusal(Some(&policy()), &request("GET", &[("origin", "https://app.example.com")]), &mut rejection);
        let get = |name: &str| rejection.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(get("access-control-allow-origin").as_deref(), Some("https://app.example.com"));
        assert!(get("access-control-expose-headers").is_some_and(|v| v.contains("www-authenticate")));
        assert_eq!(get("vary").as_deref(), Some("Origin"));

        let mut rejection = Rejection::new(401, "unauthorized", "x");
        on_refusal(Some(&policy()), &request("GET", &[("origin", "https://evil.example")]), &mut rejection);
        assert_eq!(rejection.headers, vec![("vary", "Origin".to_owned())]);
    }

    #[test]
    fn the_upstreams_cors_headers_are_replaced() {
        let mut response = ResponseHeader::build(200, None).unwrap();
        response.insert_header("access-control-allow-origin", "*").unwrap();
        response.insert_header("access-control-allow-methods", "DELETE").unwrap();
        response.insert_header("vary", "Accept-Encoding").unwrap();
        let from_app = request("GET", &[("origin", "https://app.example.com")]);
        on_upstream_response(&policy(), &from_app, &mut response).unwrap();
        let all = |name: &str| -> Vec<String> {
            response.headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
        };
        assert_eq!(all("access-control-allow-origin"), ["https://app.example.com"]);
        assert!(all("access-control-allow-methods").is_empty());
        assert_eq!(all("vary"), ["Accept-Encoding", "Origin"]);
        assert_eq!(all("access-control-expose-headers"), ["x-request-id"]);

        let mut response = ResponseHeader::build(200, None).unwrap();
        response.insert_header("access-control-allow-origin", "*").unwrap();
        on_upstream_response(&policy(), &request("GET", &[("origin", "https://evil.example")]), &mut response).unwrap();
        assert!(response.headers.get("access-control-allow-origin").is_none());
    }
}
