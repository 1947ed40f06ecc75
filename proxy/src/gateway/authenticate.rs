//! Authentication and the policy decision for a protected (or unmatched)
//! route: the request's credential, from the first credential source that
//! finds one (`auth::source`), or else its session cookie (`sessions`),
//! its identity, then `policy::decide` (scopes, then the route's claim
//! conditions). Only the credential kinds the route accepts are looked
//! for; another kind counts as absent.

use std::sync::Arc;
use std::time::Instant;

use config::CredentialKinds;
use pingora::http::RequestHeader;
use policy::{decide, ClientCertificate, NormalizedPath, Principal, Route};

use super::respond::Denied;
use super::sessions::{self, SessionAuth};
use crate::auth::source::CredentialKind;
use crate::auth::{AuthError, Authenticator, CertificateBinding, Identity, Scheme};
use crate::metrics::observe_since;
use crate::runtime::Runtime;

/// A request the policy lets through.
pub(crate) struct Authorized {
    pub(crate) identity: Arc<Identity>,
    /// `Set-Cookie` values renewing the request's session, if any.
    pub(crate) cookies: Vec<String>,
}

/// Where the request is going, as admission routed it, and over what.
pub(crate) struct Target<'a> {
    pub(crate) index: Option<usize>,
    pub(crate) route: Option<&'a Route>,
    pub(crate) path: Option<&'a NormalizedPath<'a>>,
    /// The connection's verified client certificate (mTLS).
    pub(crate) certificate: Option<&'a ClientCertificate>,
}

/// The verified identity the request may proceed with, or the refusal.
pub(crate) async fn authorize(
    request: &RequestHeader,
    client: Option<std::net::IpAddr>,
    runtime: &Runtime,
    target: Target<'_>,
    accepts: CredentialKinds,
) -> Result<Authorized, Denied> {
    let challenges = runtime.challenges();
    let auth = runtime.auth();
    let presented = auth.find(request, accepts).map_err(|error| Denied::malformed_credential(error, challenges))?;
    let started = Instant::now();
    let (result, auth_path, scheme, cookies) = match presented {
        Some(presented) => {
            let scheme = if presented.kind == CredentialKind::ApiKey { Scheme::ApiKey } else { Scheme::Bearer };
            let (result, path) = auth.authenticate_from(presented, client).await;
            let result = match scheme {
                Scheme::Bearer => result.and_then(|identity| bound_to(identity, target.certificate, auth)),
                Scheme::ApiKey => result,
            };
            (result, path, scheme, Vec::new())
        }
        None => match sessions::authenticate(request, client, runtime, accepts).await? {
            SessionAuth::Authenticated { result, path, cookies } => (result, path, Scheme::Bearer, cookies),
            // Public routes never get here; for an unmatched path the
            // answer is the same 401 as for a protected one, revealing
            // nothing.
            SessionAuth::None { cookies } => {
                return Err(sessions::no_credential(request, runtime, target.index, accepts, cookies))
            }
        },
    };
    let timer = auth.metrics().auth_timer(auth_path);
    let identity = match result {
        Ok(identity) => identity,
        Err(error) => {
            observe_since(timer, started);
            return Err(Denied::unauthenticated(error, challenges).with_cookies(cookies));
        }
    };
    let principal = Principal { issuer: identity.issuer, scopes: &identity.scopes, claims: &identity.claims };
    let decision = decide(target.route, Some(principal), target.path);
    observe_since(timer, started);
    match Denied::by_policy(decision, challenges, scheme) {
        Some(denied) => Err(denied.with_cookies(cookies)),
        None => Ok(Authorized { identity, cookies }),
    }
}

/// RFC 8705 section 3: a certificate-bound token is accepted only over a
/// connection whose client certificate has the token's `x5t#S256`, and an
/// issuer with `require_bound_tokens` has no other kind. (A session's
/// token is portcullis's own, never presented by the browser: not here.)
fn bound_to(
    identity: Arc<Identity>,
    certificate: Option<&ClientCertificate>,
    auth: &Authenticator,
) -> Result<Arc<Identity>, AuthError> {
    match identity.binding {
        CertificateBinding::Certificate(thumbprint) if certificate.is_some_and(|c| c.sha256 == thumbprint) => {
            Ok(identity)
        }
        CertificateBinding::Certificate(_) => {
            Err(AuthError::InvalidToken("the token is bound to a client certificate this connection did not present"))
        }
        CertificateBinding::Unusable => {
            Err(AuthError::InvalidToken("the token's certificate binding (cnf.x5t#S256) is not a SHA-256 thumbprint"))
        }
        CertificateBinding::Unbound => {
            let issuer = auth.issuers().get(identity.issuer.0);
            if issuer.is_some_and(|state| state.config().require_bound_tokens) {
                Err(AuthError::InvalidToken("this issuer's tokens must be bound to a client certificate"))
            } else {
                Ok(identity)
            }
        }
    }
}
