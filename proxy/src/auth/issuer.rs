//! One issuer's long-lived verification state, kept across reloads while
//! the issuer's configuration is unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use config::{Algorithm, Issuer};
use credentials::keys::{to_jwt_algorithm, KeySet};
use jsonwebtoken::Validation;

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
    /// One per pinned algorithm: jsonwebtoken wants every algorithm of a
    /// `Validation` in the family of the key it verifies with.
    validations: Vec<(Algorithm, Validation)>,
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
        let issuer = keys.issuer();
        let validations = issuer.algorithms.iter().map(|&alg| (alg, validation_for(issuer, alg))).collect();
        let introspector = issuer.introspection.clone().map(Introspector::new);
        IssuerState { uid: NEXT_ISSUER_UID.fetch_add(1, Ordering::Relaxed), keys, introspector, validations }
    }

    pub(crate) fn config(&self) -> &Issuer {
        self.keys.issuer()
    }

    /// Has keys, or can introspect: the readiness condition.
    pub(crate) fn is_ready(&self) -> bool {
        self.keys.keys().is_some() || self.introspector.is_some() && self.keys.discovered().is_some()
    }

    /// The validation rules for tokens signed with `alg`.
    pub(super) fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations.iter().find_map(|(a, v)| (*a == alg).then_some(v))
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

fn validation_for(issuer: &Issuer, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(to_jwt_algorithm(alg));
    validation.leeway = issuer.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[&issuer.issuer]);
    let mut required = vec!["exp", "iss"];
    // Audiences read from other claims are checked after decoding
    // (`bearer_jwt::check_claims`), never skipped.
    if issuer.any_audience || !issuer.audience_is_aud() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&issuer.audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
}
