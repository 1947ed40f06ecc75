//! Rate-limit enforcement. Limits keyed by something other than the subject
//! apply before any credential is looked at, so a login or token flood is
//! refused before it costs a verification; `subject` limits apply once the
//! identity is known.

use std::net::IpAddr;

use config::RateKey;
use pingora::prelude::Session;
use policy::Route;

use super::body;
use super::respond::Denied;
use crate::auth::Identity;
use crate::ratelimit::{KeyValue, Limiter};
use crate::runtime::Runtime;

/// The route's client-address, header and form-field limits.
pub(crate) async fn before_authentication(
    session: &mut Session,
    runtime: &Runtime,
    route: &Route,
    client_ip: Option<IpAddr>,
) -> Result<(), Denied> {
    let limiters = || route.rate_limits.iter().filter_map(|&i| runtime.limiter(i));
    let needs_body = limiters().any(|limiter| matches!(limiter.config.key, RateKey::FormField(_)));
    let form_body = if needs_body { body::read_small_body(session).await } else { None };
    for limiter in limiters() {
        match &limiter.config.key {
            RateKey::Subject => {}
            RateKey::FormField(field) => {
                let values = form_body
                    .as_deref()
                    .map(|body| body::form_field_values(body, body::content_type(session), field))
                    .unwrap_or_default();
                // Without the field, the client address stands in.
                if values.is_empty() {
                    enforce(limiter, client_key(client_ip))?;
                }
                for value in &values {
                    enforce(limiter, KeyValue::Text(value))?;
                }
            }
            RateKey::Header(name) => {
                let value = session.req_header().headers.get(name.as_str()).and_then(|v| v.to_str().ok());
                enforce(limiter, value.map_or(client_key(client_ip), KeyValue::Text))?;
            }
            RateKey::ClientIp => enforce(limiter, client_key(client_ip))?,
        }
    }
    Ok(())
}

/// The route's `subject` limits, for an authenticated identity.
pub(crate) fn by_subject(runtime: &Runtime, route: &Route, identity: &Identity) -> Result<(), Denied> {
    let subject = identity.subject.as_deref().unwrap_or("");
    for limiter in route.rate_limits.iter().filter_map(|&i| runtime.limiter(i)) {
        if limiter.config.key == RateKey::Subject {
            enforce(limiter, KeyValue::Text(subject))?;
        }
    }
    Ok(())
}

/// The client address as a limit key (the stand-in when a limit's own key
/// is missing).
fn client_key(client_ip: Option<IpAddr>) -> KeyValue<'static> {
    client_ip.map_or(KeyValue::Text(""), KeyValue::Ip)
}

fn enforce(limiter: &Limiter, key: KeyValue<'_>) -> Result<(), Denied> {
    limiter.check(key).map_err(|refusal| {
        limiter.rejected.inc();
        Denied::rate_limited(limiter.name(), limiter.policy_header(), refusal.retry_after)
    })
}
