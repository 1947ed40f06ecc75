//! Opaque bearer tokens: asked of every issuer that introspects (RFC 7662),
//! in configuration order, until one knows the token.

use pingora::http::RequestHeader;
use policy::IssuerId;

use super::{BearerPlaces, CredentialSource, PresentationError, Verifier};
use crate::auth::cache::TokenDigest;
use crate::auth::identity::Verified;
use crate::auth::introspect::{Answer, IntrospectionError};
use crate::auth::{AuthError, Identity};
use crate::labels::AuthPath;

pub(crate) struct Introspection {
    places: BearerPlaces,
}

impl Introspection {
    pub(super) fn new(places: BearerPlaces) -> Introspection {
        Introspection { places }
    }
}

impl CredentialSource for Introspection {
    /// Any bearer token: the JWT source, asked first, has taken the JWS ones.
    fn find<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, PresentationError> {
        Ok(self.places.token(request)?)
    }

    async fn authenticate(
        &self,
        verifier: &Verifier,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Identity, AuthError> {
        let mut tried = false;
        for (index, state) in verifier.issuers.iter().enumerate() {
            let Some(introspector) = &state.introspector else { continue };
            tried = true;
            if introspector.known_inactive(digest) {
                continue;
            }
            let issuer = state.config();
            if issuer.introspection.as_ref().is_some_and(|i| i.endpoint.is_none()) && state.keys.discovered().is_none()
            {
                state.keys.wait_for_first_keys().await;
            }
            let name = issuer.name.as_str();
            let count = |result: &str| verifier.metrics.introspections.with_label_values(&[name, result]).inc();
            match introspector.introspect(issuer, &state.keys, &verifier.client, token, *digest).await {
                Ok(Answer::Active { claims, valid_until }) => {
                    count("active");
                    let verified = Verified { issuer: IssuerId(index), key_id: None, claims: &claims, valid_until };
                    return Ok(verifier.identities.make(state, verified));
                }
                Ok(Answer::Inactive) => count("inactive"),
                Err(IntrospectionError::OverBudget(_)) => {
                    // Counted by the metric only: this is what a flood looks like.
                    count("over_budget");
                    return Err(AuthError::IssuerUnavailable { retry_after: 1 });
                }
                Err(error) => {
                    count("error");
                    tracing::warn!(issuer = %name, error = %error, "introspection failed");
                    return Err(AuthError::IssuerUnavailable { retry_after: state.retry_after() });
                }
            }
        }
        Err(AuthError::InvalidToken(if tried { "the token is not active" } else { "the token is malformed" }))
    }

    fn path(&self) -> AuthPath {
        AuthPath::Introspected
    }
}
