//! Opaque tokens: RFC 7662 token introspection.
//!
//! Active answers become identities in the shared verified-token cache
//! (until `min(exp, max_ttl)`, `max_ttl` less up to a quarter, spread per
//! token: `cache::lifetime`); inactive answers are remembered here for
//! `negative_ttl`, in a bounded cache, so replaying a dead token does not
//! reach the IdP. Concurrent calls per issuer are capped.

use config::{Introspection, Issuer};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

pub(crate) use credentials::introspection::{judge, Answer};

use super::cache::{self, TokenDigest};
use crate::idp::{unix_now, FetchError, IdpClient, KeyStore};

/// Calls to one IdP's introspection endpoint at once; more wait.
const MAX_CONCURRENT_CALLS: usize = 32;

pub(crate) struct Introspector {
    settings: Introspection,
    /// Token digest -> unix time until which it is known inactive.
    inactive: quick_cache::sync::Cache<TokenDigest, u64>,
    calls: Semaphore,
    /// Calls per second to the IdP, at most.
    budget: governor::DefaultDirectRateLimiter,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IntrospectionError {
    #[error("no introspection endpoint known")]
    NoEndpoint,
    #[error("introspection call failed: {0}")]
    Fetch(#[from] FetchError),
    #[error("introspection calls are over their budget of {0} per second")]
    OverBudget(u32),
}

impl Introspector {
    pub(crate) fn new(settings: Introspection) -> Introspector {
        let rate = std::num::NonZeroU32::new(settings.max_calls_per_second).unwrap_or(std::num::NonZeroU32::MIN);
        Introspector {
            inactive: quick_cache::sync::Cache::new(settings.max_entries.max(1)),
            budget: governor::RateLimiter::direct(governor::Quota::per_second(rate)),
            settings,
            calls: Semaphore::new(MAX_CONCURRENT_CALLS),
        }
    }

    /// Answer from the negative cache alone, if it knows.
    pub(crate) fn known_inactive(&self, digest: &TokenDigest) -> bool {
        self.inactive.get(digest).is_some_and(|until| until > unix_now())
    }

    pub(crate) async fn introspect(
        &self,
        issuer: &Issuer,
        keys: &KeyStore,
        client: &IdpClient,
        token: &str,
        digest: TokenDigest,
    ) -> Result<Answer, IntrospectionError> {
        let endpoint = match &self.settings.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => keys.discovered().and_then(|d| d.introspection_endpoint).ok_or(IntrospectionError::NoEndpoint)?,
        };
        if self.budget.check().is_err() {
            return Err(IntrospectionError::OverBudget(self.settings.max_calls_per_second));
        }
        let secret = self.settings.client_secret.as_ref().map(|s| s.expose()).unwrap_or_default();
        let _permit = self.calls.acquire().await.map_err(|_| IntrospectionError::NoEndpoint)?;
        let form = [("token", token), ("token_type_hint", "access_token")];
        let response =
            client.post_form(&endpoint, &self.settings.client_id, secret, &form, issuer.http_timeout).await?;
        let claims: Map<String, Value> = serde_json::from_slice(&response.body)
            .map_err(|e| FetchError::Invalid(format!("introspection response: {e}")))?;
        let now = unix_now();
        let answer = match judge(claims, issuer, &self.settings, now) {
            // Within max_ttl, spread per token like the verified-token
            // cache's ttl: answers fetched together do not all lapse together
            // and come back to the endpoint in one burst.
            Answer::Active { claims, valid_until } => {
                let trusted_for = cache::lifetime(self.settings.max_ttl, &digest);
                Answer::Active { claims, valid_until: valid_until.min(now.saturating_add(trusted_for)) }
            }
            Answer::Inactive => {
                self.inactive.insert(digest, now + self.settings.negative_ttl.as_secs());
                Answer::Inactive
            }
        };
        Ok(answer)
    }
}
