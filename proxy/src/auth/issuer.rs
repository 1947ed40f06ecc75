//! One issuer's long-lived verification state, kept across reloads while
//! the issuer's configuration is unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use config::Issuer;
use credentials::jws::ClaimRules;
use credentials::keys::KeySet;

use super::introspect::Introspector;
use crate::idp::{IdpClient, KeyStore};
use crate::metrics::Metrics;

static NEXT_ISSUER_UID: AtomicU64 = AtomicU64::new(1);

/// Everything about one issuer that outlives a configuration reload while
/// the issuer's configuration stays the same: its keys and JWKS refresh
/// state, its introspection client and negative cache.
pub struct IssuerState {
    /// Tells this state from an earlier one of the same issuer: a cached
    /// identity is only served while the state that made it is in force.
    pub(crate) uid: u64,
    pub(crate) keys: Arc<KeyStore>,
    pub(super) introspector: Option<Introspector>,
}

impl IssuerState {
    pub(crate) fn new(issuer: Issuer, client: Arc<IdpClient>, metrics: Arc<Metrics>) -> IssuerState {
        IssuerState::around(KeyStore::start(issuer, client, metrics))
    }

    /// An issuer whose keys are given, never fetched (benchmarks, tests).
    pub fn with_keys(issuer: Issuer, keys: KeySet, client: Arc<IdpClient>, metrics: Arc<Metrics>) -> IssuerState {
        IssuerState::around(KeyStore::preloaded(issuer, keys, client, metrics))
    }

    fn around(keys: Arc<KeyStore>) -> IssuerState {
        let introspector = keys.issuer().introspection.clone().map(Introspector::new);
        IssuerState { uid: NEXT_ISSUER_UID.fetch_add(1, Ordering::Relaxed), keys, introspector }
    }

    pub(crate) fn config(&self) -> &Issuer {
        self.keys.issuer()
    }

    /// Has keys, or can introspect: the readiness condition.
    pub(crate) fn is_ready(&self) -> bool {
        self.keys.keys().is_some() || self.introspector.is_some() && self.keys.discovered().is_some()
    }

    /// What the registered claims of this issuer's tokens must say.
    /// Audiences read from other claims than `aud` are checked after this
    /// (`bearer_jwt::check_claims`), never skipped.
    pub(super) fn claim_rules(&self) -> ClaimRules<'_> {
        let issuer = self.config();
        let audiences = (!issuer.any_audience && issuer.audience_is_aud()).then_some(issuer.audiences.as_slice());
        ClaimRules { issuer: &issuer.issuer, audiences, require_subject: false, leeway: issuer.leeway.as_secs() }
    }

    /// How long a client should wait while the issuer is unavailable.
    /// Without keys: until the key store's next attempt (it backs off from
    /// 250 ms then), so `Retry-After` tells the truth. With keys (a failed
    /// introspection) or for a secret that is missing: a fixed estimate.
    pub(super) fn retry_after(&self) -> u64 {
        let next_fetch = if self.keys.keys().is_none() { self.keys.seconds_to_next_attempt() } else { None };
        next_fetch.unwrap_or_else(|| self.config().min_refresh_interval.as_secs().clamp(1, 30))
    }
}
