//! Authentication and the policy decision for a protected (or unmatched)
//! route: the request's credential, from the first credential source that
//! finds one (`auth::source`), its identity, then `policy::decide` (scopes,
//! then the route's claim conditions). Only the credential kinds the route
//! accepts are looked for; another kind counts as absent.

use std::sync::Arc;
use std::time::Instant;

use config::CredentialKinds;
use pingora::http::RequestHeader;
use policy::{decide, NormalizedPath, Principal, Route};

use super::respond::Denied;
use crate::auth::source::CredentialKind;
use crate::auth::{Identity, Scheme};
use crate::metrics::observe_since;
use crate::runtime::Runtime;

/// The verified identity the request may proceed with, or the refusal.
pub(crate) async fn authorize(
    request: &RequestHeader,
    client: Option<std::net::IpAddr>,
    runtime: &Runtime,
    route: Option<&Route>,
    path: Option<&NormalizedPath<'_>>,
    accepts: CredentialKinds,
) -> Result<Arc<Identity>, Denied> {
    let challenges = runtime.challenges();
    let auth = runtime.auth();
    let presented = auth.find(request, accepts).map_err(|error| Denied::malformed_credential(error, challenges))?;
    let Some(presented) = presented else {
        // Public routes never get here; for an unmatched path the answer is
        // the same 401 as for a protected one, revealing nothing.
        return Err(Denied::credential_required(challenges, accepts));
    };
    let scheme = if presented.kind == CredentialKind::ApiKey { Scheme::ApiKey } else { Scheme::Bearer };

    let started = Instant::now();
    let (result, auth_path) = auth.authenticate_from(presented, client).await;
    let timer = auth.metrics().auth_timer(auth_path);
    let identity = match result {
        Ok(identity) => identity,
        Err(error) => {
            observe_since(timer, started);
            return Err(Denied::unauthenticated(error, challenges));
        }
    };
    let principal = Principal { issuer: identity.issuer, scopes: &identity.scopes, claims: &identity.claims };
    let decision = decide(route, Some(principal), path);
    observe_since(timer, started);
    match Denied::by_policy(decision, challenges, scheme) {
        Some(denied) => Err(denied),
        None => Ok(identity),
    }
}
