//! Method- and URL-override headers a route lets through
//! (`allow_override`). The upstream framework runs the overridden method or
//! path, so the policy decides on that one: the route is found again for
//! it, and the request is refused when it would go to another upstream.

use config::METHOD_OVERRIDE_HEADERS;
use http::Method;
use pingora::http::RequestHeader;
use policy::normalize;

use super::forwarding::same_header;
use super::respond::Denied;
use super::routing::{request_host, Routed};
use crate::runtime::Runtime;

/// Route `routed` again for the override headers its route allows and the
/// request carries; the names the upstream may then receive.
pub(super) fn apply(
    request: &RequestHeader,
    runtime: &Runtime,
    routed: &mut Routed,
) -> Result<Vec<&'static str>, Denied> {
    let Some(index) = routed.route else { return Ok(Vec::new()) };
    let allowed = runtime.config().route_overrides.get(index).map_or(&[][..], Vec::as_slice);
    let (mut kept, mut method, mut target) = (Vec::new(), None, None);
    for &name in allowed {
        let Some(value) = one_value(request, name)? else { continue };
        let slot = if METHOD_OVERRIDE_HEADERS.contains(&name) { &mut method } else { &mut target };
        if slot.replace(value).is_some() {
            return Err(Denied::bad_request(400, "two override headers of one kind"));
        }
        kept.push(name);
    }
    if kept.is_empty() {
        return Ok(kept);
    }
    let method = match method {
        Some(value) => {
            Method::from_bytes(value.as_bytes()).map_err(|_| Denied::bad_request(400, "invalid method override"))?
        }
        None => request.method.clone(),
    };
    let raw_path = target.map_or(request.uri.path(), |target| target.split_once('?').map_or(target, |(path, _)| path));
    let path = normalize(raw_path).map_err(|e| Denied::bad_request(400, format!("URL override: {e}")))?;
    let host = request_host(request).map_err(|message| Denied::bad_request(400, message))?;
    let route = runtime.routes().find_index(method.as_str(), host.as_deref(), &path);
    let spec = |index: usize| runtime.routes().routes().get(index);
    let upstream_of = |index: usize| spec(index).map(|route| route.upstream);
    if route.is_some_and(|new| upstream_of(new) != upstream_of(index)) {
        return Err(Denied::bad_request(400, "the override would reach another upstream"));
    }
    routed.route = route;
    routed.path = route.and_then(spec).is_some_and(|route| route.reads_path).then(|| path.into_owned());
    Ok(kept)
}

/// The value of `name` on the request. Refused when repeated, or sent with
/// `_` for `-` (upstreams may read either: the one decided on must be the
/// one they read).
fn one_value<'r>(request: &'r RequestHeader, name: &str) -> Result<Option<&'r str>, Denied> {
    let mut found = request.headers.iter().filter(|(header, _)| same_header(header.as_str(), name));
    let Some((header, value)) = found.next() else { return Ok(None) };
    if found.next().is_some() || header.as_str() != name {
        return Err(Denied::bad_request(400, "an override header is repeated or spelt with '_'"));
    }
    value.to_str().map(Some).map_err(|_| Denied::bad_request(400, "an override header is not text"))
}
