//! Token authentication: from a bearer token to a verified [`Identity`].
//!
//! Order of work for one token: the verified-token cache (no crypto, no
//! network), then an unverified peek to pick the issuer by `iss`, then full
//! verification with that issuer's pinned algorithms and keys (refreshing
//! the JWKS, single-flight and rate-limited, when the `kid` is unknown).
//! Tokens that are not JWS go to RFC 7662 introspection where configured.

pub use credentials::{bearer, claims, keys, peek};

pub mod cache;
pub mod introspect;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use config::{Algorithm, HeaderValueSource, IdentityHeader, Issuer, KeySource};
use http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use policy::{IssuerId, ScopeSet};
use serde_json::{Map, Value};

use crate::idp::{unix_now, IdpClient, KeyStore};
use crate::metrics::Metrics;
use cache::{TokenCache, TokenDigest};
use introspect::{Answer, Introspector};
use keys::{to_jwt_algorithm, KeyLookup, KeySet};

/// A verified identity: what the policy and the identity headers need,
/// computed once per token and shared by every request that presents it.
#[derive(Debug)]
pub struct Identity {
    pub issuer: IssuerId,
    /// The [`IssuerState`] that verified it; a cached identity is only used
    /// while that same state (same issuer configuration) is in force.
    pub issuer_uid: u64,
    /// Fingerprint of the verifying key; `None` for HMAC and introspection.
    pub key_id: Option<u64>,
    pub subject: Option<Box<str>>,
    pub scopes: ScopeSet,
    /// Identity-header values by index into the runtime's header list.
    pub headers: Box<[(u16, HeaderValue)]>,
    /// Unix time after which this identity must be re-established.
    pub valid_until: u64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// 401 `invalid_token`, with a fixed description that never echoes the
    /// token.
    InvalidToken(&'static str),
    /// 503: the issuer has had no usable keys since start.
    IssuerUnavailable { retry_after: u64 },
}

impl AuthError {
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::IssuerUnavailable { .. } => "issuer_unavailable",
        }
    }
}

/// How an identity was established (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Verified,
    Introspected,
    Rejected,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Verified => "verify",
            Source::Introspected => "introspect",
            Source::Rejected => "rejected",
        }
    }
}

static NEXT_ISSUER_UID: AtomicU64 = AtomicU64::new(1);

/// Everything about one issuer that outlives a configuration reload while
/// the issuer's configuration stays the same: its keys and JWKS refresh
/// state, its introspection client and negative cache.
pub struct IssuerState {
    pub uid: u64,
    pub keys: Arc<KeyStore>,
    introspector: Option<Introspector>,
    /// One per pinned algorithm: jsonwebtoken wants every algorithm of a
    /// `Validation` in the family of the key it verifies with.
    validations: Vec<(Algorithm, Validation)>,
}

impl IssuerState {
    pub fn new(issuer: Issuer, client: Arc<IdpClient>, metrics: Arc<Metrics>) -> IssuerState {
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

    pub fn config(&self) -> &Issuer {
        self.keys.issuer()
    }

    pub fn is_ready(&self) -> bool {
        self.keys.keys().is_some() || self.introspector.is_some() && self.keys.discovered().is_some()
    }
}

fn validation_for(issuer: &Issuer, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(to_jwt_algorithm(alg));
    validation.leeway = issuer.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[&issuer.issuer]);
    let mut required = vec!["exp", "iss"];
    if issuer.any_audience {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&issuer.audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Turns tokens into identities under one configuration.
pub struct Authenticator {
    issuers: Vec<Arc<IssuerState>>,
    by_iss: HashMap<String, IssuerId>,
    headers: Vec<IdentityHeader>,
    cache: Arc<TokenCache>,
    cache_ttl: Duration,
    client: Arc<IdpClient>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(
        issuers: Vec<Arc<IssuerState>>,
        headers: Vec<IdentityHeader>,
        cache: Arc<TokenCache>,
        cache_ttl: Duration,
        client: Arc<IdpClient>,
        metrics: Arc<Metrics>,
    ) -> Authenticator {
        let by_iss =
            issuers.iter().enumerate().map(|(i, state)| (state.config().issuer.clone(), IssuerId(i))).collect();
        Authenticator { issuers, by_iss, headers, cache, cache_ttl, client, metrics }
    }

    pub fn issuers(&self) -> &[Arc<IssuerState>] {
        &self.issuers
    }

    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Authenticate a bearer token.
    pub async fn authenticate(&self, token: &str) -> (Result<Arc<Identity>, AuthError>, Source) {
        let digest = cache::digest(token);
        if let Some(identity) = self.cache.get(&digest) {
            if self.still_valid(&identity) {
                self.metrics.token_cache_hits.inc();
                return (Ok(identity), Source::Cache);
            }
            self.cache.remove(&digest);
        }
        self.metrics.token_cache_misses.inc();
        let (result, source) = match peek::peek(token) {
            Ok(peeked) => (self.verify_jws(token, peeked).await, Source::Verified),
            Err(peek::PeekError::NotJws) => (self.introspect(token, digest).await, Source::Introspected),
            Err(_) => (Err(AuthError::InvalidToken("the token is malformed")), Source::Rejected),
        };
        match result {
            Ok(identity) => {
                let identity = Arc::new(identity);
                self.cache.insert(digest, Arc::clone(&identity));
                (Ok(identity), source)
            }
            Err(e) => (Err(e), Source::Rejected),
        }
    }

    /// A cached identity is served only while unexpired, while the issuer
    /// configuration that verified it is in force and while its key is
    /// still published.
    fn still_valid(&self, identity: &Identity) -> bool {
        if identity.valid_until <= unix_now() {
            return false;
        }
        let Some(state) = self.issuers.get(identity.issuer.0) else { return false };
        if state.uid != identity.issuer_uid {
            return false;
        }
        match identity.key_id {
            None => true,
            Some(id) => state.keys.publishes(id),
        }
    }

    async fn verify_jws(&self, token: &str, peeked: peek::Peeked) -> Result<Identity, AuthError> {
        let invalid = AuthError::InvalidToken;
        let issuer_id = peeked
            .issuer
            .as_deref()
            .and_then(|iss| self.by_iss.get(iss))
            .copied()
            .ok_or(invalid("the token's issuer is not accepted"))?;
        let state = &self.issuers[issuer_id.0];
        let issuer = state.config();

        // `alg` is compared exactly, against this issuer's pinned list only:
        // `none`, `None`, `HS256` on an RSA issuer all stop here.
        let alg = Algorithm::from_name(&peeked.header.alg)
            .filter(|a| issuer.algorithms.contains(a))
            .ok_or(invalid("the token's algorithm is not allowed"))?;
        if peeked.header.crit.is_some() {
            return Err(invalid("the token has critical header parameters this proxy does not understand"));
        }
        if !issuer.token_types.is_empty() {
            let typ = peeked.header.typ.as_deref().map(|t| t.to_ascii_lowercase());
            let typ = typ.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t));
            if !typ.is_some_and(|t| issuer.token_types.iter().any(|allowed| allowed == t)) {
                return Err(invalid("the token type is not accepted"));
            }
        }

        if state.keys.keys().is_none() {
            state.keys.wait_for_first_keys().await;
        }
        let Some(mut keys) = state.keys.keys() else {
            return Err(AuthError::IssuerUnavailable { retry_after: retry_after(issuer) });
        };
        let kid = peeked.header.kid.as_deref();
        if matches!(keys.lookup(kid, alg), KeyLookup::UnknownKid) {
            state.keys.refresh_for_unknown_key().await;
            if let Some(fresh) = state.keys.keys() {
                keys = fresh;
            }
        }
        let key = match keys.lookup(kid, alg) {
            KeyLookup::Found(key) => key,
            KeyLookup::UnknownKid => return Err(invalid("the token is signed with an unknown key")),
            KeyLookup::Ambiguous => return Err(invalid("the token has no key id and the issuer has several keys")),
            KeyLookup::Incompatible => return Err(invalid("no key of the issuer can verify this algorithm")),
        };
        let validation = state
            .validations
            .iter()
            .find_map(|(a, v)| (*a == alg).then_some(v))
            .ok_or(invalid("the token's algorithm is not allowed"))?;
        let verified = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| invalid(describe(e.kind())))?;
        let key_id = (!matches!(issuer.keys, KeySource::Secret { .. })).then_some(key.id);
        let claims = verified.claims;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let valid_until = exp.saturating_add(issuer.leeway.as_secs()).min(unix_now() + self.cache_ttl.as_secs());
        Ok(self.identity(issuer_id, state, key_id, &claims, valid_until))
    }

    async fn introspect(&self, token: &str, digest: TokenDigest) -> Result<Identity, AuthError> {
        let mut tried = false;
        for (index, state) in self.issuers.iter().enumerate() {
            let Some(introspector) = &state.introspector else { continue };
            tried = true;
            if introspector.known_inactive(&digest) {
                continue;
            }
            let issuer = state.config();
            if issuer.introspection.as_ref().is_some_and(|i| i.endpoint.is_none()) && state.keys.discovered().is_none()
            {
                state.keys.wait_for_first_keys().await;
            }
            let name = issuer.name.as_str();
            match introspector.introspect(issuer, &state.keys, &self.client, token, digest).await {
                Ok(Answer::Active { claims, valid_until }) => {
                    self.metrics.introspections.with_label_values(&[name, "active"]).inc();
                    return Ok(self.identity(IssuerId(index), state, None, &claims, valid_until));
                }
                Ok(Answer::Inactive) => {
                    self.metrics.introspections.with_label_values(&[name, "inactive"]).inc();
                }
                Err(introspect::IntrospectionError::OverBudget(_)) => {
                    // Logged by the metric only: this is what a flood looks like.
                    self.metrics.introspections.with_label_values(&[name, "over_budget"]).inc();
                    return Err(AuthError::IssuerUnavailable { retry_after: 1 });
                }
                Err(error) => {
                    self.metrics.introspections.with_label_values(&[name, "error"]).inc();
                    tracing::warn!(issuer = %name, error = %error, "introspection failed");
                    return Err(AuthError::IssuerUnavailable { retry_after: retry_after(issuer) });
                }
            }
        }
        Err(AuthError::InvalidToken(if tried { "the token is not active" } else { "the token is malformed" }))
    }

    fn identity(
        &self,
        issuer: IssuerId,
        state: &IssuerState,
        key_id: Option<u64>,
        claims: &Map<String, Value>,
        valid_until: u64,
    ) -> Identity {
        let scopes = claims::scopes(claims, &state.config().scope_claims);
        let headers = self
            .headers
            .iter()
            .enumerate()
            .filter_map(|(index, header)| {
                let value = match &header.source {
                    HeaderValueSource::Scopes => {
                        claims::safe_header_value(&scopes.iter().collect::<Vec<_>>().join(" "))
                    }
                    HeaderValueSource::Claim(path) => claims::lookup(claims, path).and_then(claims::header_value),
                }?;
                Some((u16::try_from(index).ok()?, value))
            })
            .collect();
        let subject = claims.get("sub").and_then(Value::as_str).map(Into::into);
        Identity { issuer, issuer_uid: state.uid, key_id, subject, scopes, headers, valid_until }
    }
}

fn retry_after(issuer: &Issuer) -> u64 {
    issuer.min_refresh_interval.as_secs().clamp(1, 30)
}

/// A fixed description per failure: informative for the client's developer,
/// never containing token content.
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
        ErrorKind::InvalidAudience => "the token is not for this audience",
        ErrorKind::InvalidSignature => "the token's signature is invalid",
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not allowed",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "the token has no expiry (exp)",
            "aud" => "the token has no audience (aud)",
            "iss" => "the token has no issuer (iss)",
            _ => "the token lacks a required claim",
        },
        ErrorKind::InvalidClaimFormat(_) => "a time claim of the token is malformed",
        _ => "the token is malformed",
    }
}
