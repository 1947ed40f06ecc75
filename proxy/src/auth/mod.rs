//! Authentication: from a credential on a request to a verified [`Identity`].
//!
//! The credential sources (`source`) find a credential and verify it; this
//! module puts the verified-token cache in front of them, so a credential
//! that verified once costs a hash and a lookup until it expires: no
//! crypto, no network. Per issuer state that survives reloads (keys,
//! refresh state, introspection) is in `issuer`.

mod budget;
pub(crate) mod cache;
mod challenge;
pub(crate) mod id_token;
mod identity;
pub(crate) mod introspect;
mod issuer;
mod refused;
pub(crate) mod revocation;
pub(crate) mod source;

use std::sync::Arc;
use std::time::Duration;

use config::{ApiKeys, ClaimPath, CredentialKinds, IdentityHeader, TokenSettings};
use pingora::http::RequestHeader;

use crate::idp::{unix_now, IdpClient};
use crate::labels::AuthPath;
use crate::metrics::Metrics;
pub use cache::{digest, TokenCache};
pub(crate) use challenge::{Challenges, Scheme};
pub(crate) use identity::condition_value;
use identity::IdentityMaker;
pub(crate) use identity::{is_api_key, API_KEY_ISS, API_KEY_ISSUER};
pub use identity::{CertificateBinding, Identity};
pub use issuer::IssuerState;
pub use revocation::Revocations;
use source::{CredentialKind, PresentationError, Presented, Sources, Verifier};

/// Why a credential was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// 401 `invalid_token`, with a fixed description that never echoes the
    /// token.
    InvalidToken(&'static str),
    /// 401 `invalid_key`: an API key that is malformed, unknown or expired.
    InvalidApiKey(&'static str),
    /// 503: the issuer has had no usable keys since start, or cannot be
    /// asked right now.
    IssuerUnavailable { retry_after: u64 },
    /// 429: the client has sent more invalid tokens than its
    /// `failed_auth_budget` allows; nothing was verified.
    OverFailedAuthBudget { retry_after: u64 },
}

/// What the cache and the sources need to build an [`Authenticator`].
pub struct AuthSettings<'c> {
    pub issuers: Vec<Arc<IssuerState>>,
    pub identity_headers: Vec<IdentityHeader>,
    /// The claims route conditions read (`Config::condition_claims`).
    pub condition_claims: Vec<ClaimPath>,
    pub tokens: &'c TokenSettings,
    pub cache: Arc<TokenCache>,
    pub cache_ttl: Duration,
    /// The process's denylist (shared by every configuration).
    pub revocations: Arc<Revocations>,
}

/// Turns credentials into identities under one configuration.
pub struct Authenticator {
    sources: Sources,
    verifier: Verifier,
    cache: Arc<TokenCache>,
    /// JWTs refused moments ago: a replay is refused without verifying.
    refused: refused::RefusedTokens,
    /// `tokens.failed_auth_budget`, when set.
    budget: Option<budget::FailedAuthBudget>,
    revocations: Arc<Revocations>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings<'_>, client: Arc<IdpClient>, metrics: Arc<Metrics>) -> Authenticator {
        let sources = Sources::new(settings.tokens, &settings.issuers);
        let budget = settings
            .tokens
            .failed_auth_budget
            .clone()
            .map(|limit| budget::FailedAuthBudget::new(limit, metrics.failed_auth_budget_refusals.clone()));
        let verifier = Verifier {
            issuers: settings.issuers,
            identities: IdentityMaker::new(settings.identity_headers, settings.condition_claims),
            client,
            metrics,
            cache_ttl: settings.cache_ttl,
        };
        Authenticator {
            sources,
            verifier,
            cache: settings.cache,
            refused: refused::RefusedTokens::new(),
            budget,
            revocations: settings.revocations,
        }
    }

    /// With the configured API keys (none when `None`).
    pub(crate) fn with_api_keys(mut self, keys: Option<&ApiKeys>) -> Authenticator {
        self.sources.set_api_keys(keys);
        self
    }

    /// Whether API keys are configured.
    pub(crate) fn has_api_keys(&self) -> bool {
        self.sources.api_key().is_some()
    }

    /// The operator's API key header, when keys come in one.
    pub(crate) fn api_key_header(&self) -> Option<&http::HeaderName> {
        self.sources.api_key().and_then(|source| source.header())
    }

    pub(crate) fn issuers(&self) -> &[Arc<IssuerState>] {
        &self.verifier.issuers
    }

    pub(crate) fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.verifier.metrics
    }

    /// The request's credential, from the first source of a kind the route
    /// `accepts` that finds one.
    pub(crate) fn find<'r>(
        &self,
        request: &'r RequestHeader,
        accepts: CredentialKinds,
    ) -> Result<Option<Presented<'r>>, PresentationError> {
        self.sources.find(request, accepts)
    }

    /// Authenticate a credential found by [`Self::find`].
    ///
    /// API keys bypass the cache: their lookup (this digest, a map lookup,
    /// a comparison) costs what a cache hit costs, and the key set belongs
    /// to this configuration, so a key removed or expired is refused at
    /// once, with no cached identity outliving it.
    pub(crate) async fn authenticate(&self, presented: Presented<'_>) -> (Result<Arc<Identity>, AuthError>, AuthPath) {
        self.authenticate_from(presented, None).await
    }

    /// [`Self::authenticate`] for a request from `client` (its address as
    /// `client_ip` keys it), which the failed-authentication budget counts.
    pub(crate) async fn authenticate_from(
        &self,
        presented: Presented<'_>,
        client: Option<std::net::IpAddr>,
    ) -> (Result<Arc<Identity>, AuthError>, AuthPath) {
        let digest = cache::digest(presented.secret);
        let (result, path) = self.authenticate_digest(presented, &digest, client).await;
        match result {
            // Revocations apply to cached identities too: checked on every
            // request, in memory.
            Ok(identity) if self.revoked(&identity, &digest) => {
                self.verifier.metrics.revoked_requests.inc();
                let why = if is_api_key(identity.issuer) {
                    AuthError::InvalidApiKey("the API key has been revoked")
                } else {
                    AuthError::InvalidToken("the token has been revoked")
                };
                (Err(why), AuthPath::Rejected)
            }
            other => (other, path),
        }
    }

    /// An identity from claims verified elsewhere (a session's ID token,
    /// checked at sign-in), against the denylist like every other.
    /// `digest` stands for the credential in revocations by token.
    pub(crate) fn identity_from_claims(
        &self,
        issuer: usize,
        claims: &serde_json::Map<String, serde_json::Value>,
        valid_until: u64,
        digest: &cache::TokenDigest,
    ) -> Result<Arc<Identity>, AuthError> {
        let state = self.verifier.issuers.get(issuer).ok_or(AuthError::InvalidToken("the session's issuer is gone"))?;
        let verified = identity::Verified { issuer: policy::IssuerId(issuer), key_id: None, claims, valid_until };
        let identity = self.verifier.identities.make(state, verified);
        if self.revoked(&identity, digest) {
            self.verifier.metrics.revoked_requests.inc();
            return Err(AuthError::InvalidToken("the session has been revoked"));
        }
        Ok(Arc::new(identity))
    }

    /// Whether the identity's subject was revoked at or after `since` (a
    /// session's sign-in): sessions end with the subject's revocation.
    pub(crate) fn revoked_since(&self, identity: &Identity, since: u64) -> bool {
        let list = self.revocations.load();
        if list.is_empty() {
            return false;
        }
        let iss = self.verifier.issuers.get(identity.issuer.0).map_or("", |state| state.config().issuer.as_str());
        list.revokes_subject(identity.subject.as_deref(), iss, since)
    }

    fn count_failure(&self, client: Option<std::net::IpAddr>) {
        if let Some(budget) = &self.budget {
            budget.failed(client);
        }
    }

    /// Drop the failed-authentication budget's idle counters.
    pub(crate) fn prune(&self) {
        if let Some(budget) = &self.budget {
            budget.prune();
        }
    }

    /// Whether the denylist covers this credential (free while it is empty).
    fn revoked(&self, identity: &Identity, digest: &cache::TokenDigest) -> bool {
        let list = self.revocations.load();
        if list.is_empty() {
            return false;
        }
        let iss = match identity.issuer {
            id if is_api_key(id) => API_KEY_ISS,
            id => self.verifier.issuers.get(id.0).map_or("", |state| state.config().issuer.as_str()),
        };
        list.revokes(identity, iss, digest)
    }

    async fn authenticate_digest(
        &self,
        presented: Presented<'_>,
        digest: &cache::TokenDigest,
        client: Option<std::net::IpAddr>,
    ) -> (Result<Arc<Identity>, AuthError>, AuthPath) {
        let digest = *digest;
        if presented.kind == CredentialKind::ApiKey {
            let (result, path) = self.sources.authenticate(&self.verifier, presented, &digest).await;
            return match result {
                Ok(identity) => (Ok(Arc::new(identity)), path),
                Err(e) => (Err(e), AuthPath::Rejected),
            };
        }
        if let Some(identity) = self.cache.get(&digest) {
            if self.still_valid(&identity) {
                self.verifier.metrics.token_cache_hits.local().inc();
                return (Ok(identity), AuthPath::Cache);
            }
            self.cache.remove(&digest);
        }
        self.verifier.metrics.token_cache_misses.local().inc();
        if let Some(error) = self.refused.get(&digest) {
            self.verifier.metrics.refused_token_hits.local().inc();
            self.count_failure(client);
            return (Err(error), AuthPath::Rejected);
        }
        if let Some(retry_after) = self.budget.as_ref().and_then(|budget| budget.blocked(client)) {
            return (Err(AuthError::OverFailedAuthBudget { retry_after }), AuthPath::Rejected);
        }
        match self.sources.authenticate(&self.verifier, presented, &digest).await {
            (Ok(identity), path) => {
                let identity = Arc::new(identity);
                self.cache.insert(digest, Arc::clone(&identity));
                (Ok(identity), path)
            }
            (Err(e), path) => {
                // Introspection keeps its own negative cache (negative_ttl).
                if path == AuthPath::Verified {
                    self.refused.remember(digest, e);
                }
                // A refusal a key rotation or the clock may change does not
                // count: right after a rotation, fresh tokens behind one
                // NAT must not put its address over budget.
                if matches!(e, AuthError::InvalidToken(why) if !refused::is_passing(why)) {
                    self.count_failure(client);
                }
                (Err(e), AuthPath::Rejected)
            }
        }
    }

    /// Find and authenticate the request's credential in one step, with
    /// errors as text (benchmarks). `None`: the request carries none.
    pub async fn authenticate_request(&self, request: &RequestHeader) -> Option<Result<Arc<Identity>, String>> {
        let presented = match self.find(request, CredentialKinds::ANY) {
            Ok(presented) => presented?,
            Err(error) => return Some(Err(error.to_string())),
        };
        Some(self.authenticate(presented).await.0.map_err(|e| format!("{e:?}")))
    }

    /// A cached identity is served only while unexpired, while the issuer
    /// configuration that verified it is in force and while its key is
    /// still published.
    fn still_valid(&self, identity: &Identity) -> bool {
        if identity.valid_until <= unix_now() {
            return false;
        }
        let Some(state) = self.verifier.issuers.get(identity.issuer.0) else { return false };
        if state.uid != identity.issuer_uid {
            return false;
        }
        match identity.key_id {
            None => true,
            Some(id) => state.keys.publishes(id),
        }
    }
}
