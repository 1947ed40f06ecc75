//! Credential sources: the ways a request can say who is calling.
//!
//! Each source is a module with the same small interface
//! ([`CredentialSource`]): find its credential on the request, then
//! authenticate it into an [`Identity`](super::Identity). Admission asks
//! the sources in a fixed order and the first that finds a credential
//! decides; the others are not consulted. The order:
//!
//! 1. [`bearer_jwt`]: `Authorization: Bearer` (or the configured query
//!    parameter) holding a JWS, verified against the issuer's keys;
//! 2. [`introspection`]: the same places holding any other (opaque) token,
//!    asked of the issuers that introspect (RFC 7662);
//! 3. [`api_key`]: `Authorization: ApiKey` or the operator's header, when
//!    `api_keys` is configured.
//!
//! Only the kinds the route accepts (`credentials:`) are asked; a kind it
//! does not accept counts as absent. A request that carries both a bearer
//! token and an API key (both accepted) is refused as ambiguous (400), as
//! RFC 6750 refuses a token sent in two places: the order never silently
//! picks one.
//!
//! A new kind of credential (sessions, client certificates) is a new module
//! here and one line in [`Sources`]; the others do not change.

pub(crate) mod api_key;
pub(crate) mod bearer_jwt;
pub(crate) mod introspection;

use std::sync::Arc;

use config::{ApiKeys, CredentialKinds, TokenSettings};
use credentials::bearer::{self, BearerError};
use http::header::AUTHORIZATION;
use pingora::http::RequestHeader;

use super::cache::TokenDigest;
use super::identity::IdentityMaker;
use super::issuer::IssuerState;
use super::AuthError;
use crate::idp::IdpClient;
use crate::labels::AuthPath;
use crate::metrics::Metrics;

/// What the sources share while authenticating under one configuration.
pub(crate) struct Verifier {
    pub(crate) issuers: Vec<Arc<IssuerState>>,
    pub(crate) identities: IdentityMaker,
    pub(crate) client: Arc<IdpClient>,
    pub(crate) metrics: Arc<Metrics>,
    /// Longest time a verified identity is trusted without a new check.
    pub(crate) cache_ttl: std::time::Duration,
}

/// A credential found on a request, not yet authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'r> {
    pub(crate) kind: CredentialKind,
    pub(crate) secret: &'r str,
}

/// Which source found a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    BearerJwt,
    Introspection,
    ApiKey,
}

/// A credential presented in a way its scheme does not allow. Each has a
/// fixed answer (`gateway::respond`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PresentationError {
    #[error(transparent)]
    Bearer(#[from] BearerError),
    #[error(transparent)]
    ApiKey(#[from] api_key::ApiKeyError),
    /// 400 invalid_request: a bearer token and an API key on one request.
    #[error("the request carries more than one kind of credential")]
    SeveralKinds,
}

/// The interface every credential source implements.
pub(crate) trait CredentialSource {
    /// This source's credential on the request, if there is one.
    fn find<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, PresentationError>;

    /// The identity the credential stands for. `digest` is the credential's
    /// SHA-256, the key of every cache.
    async fn authenticate(
        &self,
        verifier: &Verifier,
        secret: &str,
        digest: &TokenDigest,
    ) -> Result<super::Identity, AuthError>;

    /// How a successful authentication is labelled in metrics.
    fn path(&self) -> AuthPath;
}

/// The configured sources, in the order they are asked.
pub(crate) struct Sources {
    bearer_jwt: bearer_jwt::BearerJwt,
    introspection: introspection::Introspection,
    api_key: Option<api_key::ApiKeySource>,
}

impl Sources {
    pub(crate) fn new(tokens: &TokenSettings, issuers: &[Arc<IssuerState>]) -> Sources {
        let bearer = BearerPlaces::new(tokens);
        Sources {
            bearer_jwt: bearer_jwt::BearerJwt::new(bearer.clone(), issuers),
            introspection: introspection::Introspection::new(bearer),
            api_key: None,
        }
    }

    /// With the API key source, when keys are configured.
    pub(crate) fn set_api_keys(&mut self, keys: Option<&ApiKeys>) {
        self.api_key = keys.map(api_key::ApiKeySource::new);
    }

    pub(crate) fn api_key(&self) -> Option<&api_key::ApiKeySource> {
        self.api_key.as_ref()
    }

    /// The first credential a source the route `accepts` finds, in the
    /// documented order; a bearer token and an API key together are refused.
    pub(crate) fn find<'r>(
        &self,
        request: &'r RequestHeader,
        accepts: CredentialKinds,
    ) -> Result<Option<Presented<'r>>, PresentationError> {
        let found = |kind| move |secret| Presented { kind, secret };
        let key = match (&self.api_key, accepts.api_key) {
            (Some(source), true) => source.find(request)?.map(found(CredentialKind::ApiKey)),
            _ => None,
        };
        if !accepts.bearer {
            return Ok(key);
        }
        let bearer = match self.bearer_jwt.find(request)?.map(found(CredentialKind::BearerJwt)) {
            Some(found) => Some(found),
            None => self.introspection.find(request)?.map(found(CredentialKind::Introspection)),
        };
        match (bearer, key) {
            (Some(_), Some(_)) => Err(PresentationError::SeveralKinds),
            (bearer, key) => Ok(bearer.or(key)),
        }
    }

    /// Authenticate with the source that found the credential.
    pub(crate) async fn authenticate(
        &self,
        verifier: &Verifier,
        presented: Presented<'_>,
        digest: &TokenDigest,
    ) -> (Result<super::Identity, AuthError>, AuthPath) {
        match presented.kind {
            CredentialKind::BearerJwt => {
                let source = &self.bearer_jwt;
                (source.authenticate(verifier, presented.secret, digest).await, source.path())
            }
            CredentialKind::Introspection => {
                let source = &self.introspection;
                (source.authenticate(verifier, presented.secret, digest).await, source.path())
            }
            CredentialKind::ApiKey => match &self.api_key {
                Some(source) => (source.authenticate(verifier, presented.secret, digest).await, source.path()),
                // Not reached: only this source finds API keys.
                None => (Err(AuthError::InvalidApiKey("API keys are not configured")), AuthPath::Rejected),
            },
        }
    }
}

/// Where a bearer token may be (RFC 6750 section 2): the `Authorization`
/// header and, when the operator allows it, one query parameter. Shared by
/// the two bearer sources, which differ in what the token looks like.
#[derive(Debug, Clone)]
pub(crate) struct BearerPlaces {
    max_bytes: usize,
    query_parameter: Option<String>,
}

impl BearerPlaces {
    fn new(tokens: &TokenSettings) -> BearerPlaces {
        BearerPlaces { max_bytes: tokens.max_bytes, query_parameter: tokens.query_parameter.clone() }
    }

    /// The request's bearer token, from exactly one place.
    fn token<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, BearerError> {
        let headers = request.headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes());
        let from_header = bearer::from_headers(headers, self.max_bytes)?;
        match (from_header, query_token(request, self.query_parameter.as_deref())) {
            (Some(_), Some(_)) => Err(BearerError::SeveralMethods),
            (Some(token), None) => Ok(Some(token)),
            (None, Some(token)) => bearer::from_query(token, self.max_bytes).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// The token from the query string, when the operator allowed one.
pub(crate) fn query_token<'r>(request: &'r RequestHeader, parameter: Option<&str>) -> Option<&'r str> {
    let name = parameter?;
    let query = request.uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}
