//! Rate-limit enforcement. Limits keyed by something other than the subject
//! apply before any credential is looked at, so a login or token flood is
//! refused before it costs a verification; `subject` limits apply once the
//! identity is known.

use std::net::IpAddr;

use config::{LimitStore, RateKey, StoreErrorPolicy};
use pingora::prelude::Session;
use policy::Route;

use super::body;
use super::respond::Denied;
use crate::auth::Identity;
use crate::ratelimit::{KeyValue, Limiter, Refusal};
use crate::runtime::Runtime;

/// Distinct values of one limited form field a request may carry.
const MAX_FIELD_VALUES: usize = 16;

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
                // A login form has one username: many distinct values are
                // a way to make one request cost many limit checks (Redis
                // round trips and keys for `store: redis`), so they are
                // refused as over the limit.
                if values.len() > MAX_FIELD_VALUES {
                    limiter.rejected.inc();
                    let retry_after = limiter.config.per.as_secs().max(1);
                    return Err(Denied::rate_limited(limiter.name(), limiter.policy_header(), retry_after));
                }
                // Without the field, the client address stands in.
                if values.is_empty() {
                    enforce(runtime, limiter, KeyValue::client(client_ip)).await?;
                }
                for value in &values {
                    enforce(runtime, limiter, KeyValue::Text(value)).await?;
                }
            }
            RateKey::Header(name) => {
                let value = session.req_header().headers.get(name.as_str()).and_then(|v| v.to_str().ok());
                enforce(runtime, limiter, value.map_or(KeyValue::client(client_ip), KeyValue::Text)).await?;
            }
            RateKey::ClientIp => enforce(runtime, limiter, KeyValue::client(client_ip)).await?,
        }
    }
    Ok(())
}

/// The route's `subject` limits, for an authenticated identity.
pub(crate) async fn by_subject(runtime: &Runtime, route: &Route, identity: &Identity) -> Result<(), Denied> {
    let subject = identity.subject.as_deref().unwrap_or("");
    for limiter in route.rate_limits.iter().filter_map(|&i| runtime.limiter(i)) {
        if limiter.config.key == RateKey::Subject {
            enforce(runtime, limiter, KeyValue::Text(subject)).await?;
        }
    }
    Ok(())
}

/// Count the request against `limiter`: in Redis for `store: redis`
/// (falling back as `on_store_error` says when Redis fails), else here.
async fn enforce(runtime: &Runtime, limiter: &Limiter, key: KeyValue<'_>) -> Result<(), Denied> {
    let decision = match (limiter.config.store, runtime.redis()) {
        (LimitStore::Redis { on_error }, Some(store)) => match store.check_limit(limiter, key).await {
            Ok(decision) => {
                count(runtime, limiter, "redis", &decision);
                decision
            }
            Err(_) => match on_error {
                StoreErrorPolicy::Local => {
                    let decision = limiter.check(key);
                    count(runtime, limiter, "local", &decision);
                    decision
                }
                StoreErrorPolicy::Allow => {
                    runtime
                        .metrics()
                        .rate_limit_decisions
                        .with_label_values(&[limiter.name(), "none", "allowed"])
                        .inc();
                    Ok(())
                }
                StoreErrorPolicy::Deny => {
                    runtime
                        .metrics()
                        .rate_limit_decisions
                        .with_label_values(&[limiter.name(), "none", "refused"])
                        .inc();
                    return Err(Denied::limit_unavailable(limiter.name()));
                }
            },
        },
        _ => limiter.check(key),
    };
    decision.map_err(|refusal| {
        limiter.rejected.inc();
        Denied::rate_limited(limiter.name(), limiter.policy_header(), refusal.retry_after)
    })
}

/// `portcullis_rate_limit_decisions_total` for a Redis-backed limit.
fn count(runtime: &Runtime, limiter: &Limiter, store: &str, decision: &Result<(), Refusal>) {
    let result = if decision.is_ok() { "allowed" } else { "refused" };
    runtime.metrics().rate_limit_decisions.with_label_values(&[limiter.name(), store, result]).inc();
}
