//! Which route a request is for: the path normalised (ambiguous paths
//! refused), the host normalised, the route table consulted, and the
//! request target the upstream will receive.

use std::borrow::Cow;

use http::header::HOST;
use pingora::http::RequestHeader;
use policy::{normalize, normalize_host, NormalizedPath, PathError};

use super::respond::Denied;
use crate::auth::source::query_token;
use crate::runtime::Runtime;

/// Where a request goes.
pub(crate) struct Routed {
    /// Index of the matched route; `None`: nothing matched (default deny).
    pub(crate) route: Option<usize>,
    /// The target to send upstream when it differs from the client's.
    pub(crate) forwarded_target: Option<String>,
    /// The normalised path, kept only when the route's claim conditions
    /// compare a captured segment (the common route costs no copy).
    pub(crate) path: Option<NormalizedPath<'static>>,
}

/// Normalise the request's path and host and find its route.
pub(crate) fn route_request(request: &RequestHeader, runtime: &Runtime) -> Result<Routed, Denied> {
    route_request_as(request, request.method.as_str(), runtime)
}

/// [`route_request`] for another method than the request's: a CORS
/// preflight is routed for the method it asks about.
pub(crate) fn route_request_as(request: &RequestHeader, method: &str, runtime: &Runtime) -> Result<Routed, Denied> {
    // Pingora keeps the original bytes of a target that is not UTF-8 for
    // the wire and gives `uri` a lossy copy: the policy would decide on a
    // path the upstream never receives. Refuse instead.
    if !request.raw_path_is_utf8() {
        return Err(Denied::bad_request(400, PathError::InvalidUtf8.to_string()));
    }
    let path = normalize(request.uri.path()).map_err(|e| match e {
        PathError::TooLong(_) => Denied::bad_request(414, e.to_string()),
        _ => Denied::bad_request(400, e.to_string()),
    })?;
    let host = request_host(request).map_err(|message| Denied::bad_request(400, message))?;
    let route = runtime.routes().find_index(method, host.as_deref(), &path);
    // Pingora forwards an absolute-form target verbatim (after checking its
    // authority against Host); send the upstream the origin form the policy
    // decided on. A query token is removed so it cannot reach upstream logs.
    let token_parameter = runtime.config().tokens.query_parameter.as_deref();
    let origin_form = request.raw_path().first() == Some(&b'/');
    let forwarded_target = (path.is_rewritten() || !origin_form || query_token(request, token_parameter).is_some())
        .then(|| forwarded_target(path.as_str(), request.uri.query(), token_parameter));
    let reads_path = route.and_then(|index| runtime.routes().routes().get(index)).is_some_and(|r| r.reads_path);
    let path = reads_path.then(|| path.into_owned());
    Ok(Routed { route, forwarded_target, path })
}

/// The host the request is for: the Host header, or HTTP/2's `:authority`
/// (the request target's authority) when there is no Host header. When
/// both are present they must name the same host (RFC 9113 8.3.1): a route
/// limited to one host must not be reached by naming another in the
/// header the router does not read.
pub(super) fn request_host(request: &RequestHeader) -> Result<Option<Cow<'_, str>>, &'static str> {
    let header = match request.headers.get(HOST) {
        Some(value) => Some(value.to_str().map_err(|_| "invalid Host header")?),
        None => None,
    };
    let authority = request.uri.authority().map(|a| a.as_str());
    match (header, authority) {
        (Some(raw), Some(authority)) => {
            let host = normalize_host(raw).map_err(|_| "invalid Host header")?;
            let named = normalize_host(authority).map_err(|_| "invalid request authority")?;
            if host != named {
                return Err("the Host header and the request's authority disagree");
            }
            Ok(Some(host))
        }
        (Some(raw), None) => normalize_host(raw).map(Some).map_err(|_| "invalid Host header"),
        (None, Some(authority)) => normalize_host(authority).map(Some).map_err(|_| "invalid request authority"),
        (None, None) => Ok(None),
    }
}

/// The request target for the upstream: the canonical path, and the query
/// without the token parameter.
fn forwarded_target(path: &str, query: Option<&str>, token_parameter: Option<&str>) -> String {
    let mut target = path.to_owned();
    let Some(query) = query else { return target };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| token_parameter.is_none_or(|name| pair.split_once('=').map_or(*pair, |(k, _)| k) != name))
        .collect();
    if !kept.is_empty() {
        target.push('?');
        target.push_str(&kept.join("&"));
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_header_or_the_authority_and_they_must_agree() {
        let request = |target: &str, host: Option<&str>| {
            let mut request = RequestHeader::build("GET", b"/", None).expect("request");
            request.set_uri(target.parse::<http::Uri>().expect("uri"));
            if let Some(host) = host {
                request.insert_header("host", host.to_owned()).expect("header");
            }
            request
        };
        let host = |r: &RequestHeader| request_host(r).map(|h| h.map(|h| h.into_owned()));
        assert_eq!(host(&request("/a", Some("API.example.com"))), Ok(Some("api.example.com".into())));
        // HTTP/2 without a Host header: `:authority`.
        assert_eq!(host(&request("https://api.example.com/a", None)), Ok(Some("api.example.com".into())));
        assert_eq!(
            host(&request("https://api.example.com/a", Some("api.example.com"))),
            Ok(Some("api.example.com".into()))
        );
        assert!(host(&request("https://admin.example.com/a", Some("api.example.com"))).is_err());
        assert_eq!(host(&request("/a", None)), Ok(None));
    }

    #[test]
    fn the_token_parameter_never_reaches_the_upstream() {
        assert_eq!(forwarded_target("/a", Some("access_token=x&b=1"), Some("access_token")), "/a?b=1");
        assert_eq!(forwarded_target("/a", Some("access_token=x"), Some("access_token")), "/a");
        assert_eq!(forwarded_target("/a", Some("access_token"), Some("access_token")), "/a");
        assert_eq!(forwarded_target("/a", Some("b=1&c=2"), None), "/a?b=1&c=2");
        assert_eq!(forwarded_target("/a", None, Some("access_token")), "/a");
    }
}
