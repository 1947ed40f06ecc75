//! Authentication and the policy decision for a protected (or unmatched)
//! route: the request's credential, from the first credential source that
//! finds one (`auth::source`), its identity, then `policy::decide`.

use std::sync::Arc;
use std::time::Instant;

use pingora::http::RequestHeader;
use policy::{decide, Principal, Route};

use super::respond::Denied;
use crate::auth::Identity;
use crate::metrics::observe_since;
use crate::runtime::Runtime;

/// The verified identity the request may proceed with, or the refusal.
pub(crate) async fn authorize(
    request: &RequestHeader,
    runtime: &Runtime,
    route: Option<&Route>,
) -> Result<Arc<Identity>, Denied> {
    let challenges = runtime.challenges();
    let auth = runtime.auth();
    let presented = auth.find(request).map_err(|error| Denied::malformed_credential(error, challenges))?;
    let Some(presented) = presented else {
        // Public routes never get here; for an unmatched path the answer is
        // the same 401 as for a protected one, revealing nothing.
        return Err(Denied::credential_required(challenges));
    };

    let started = Instant::now();
    let (result, path) = auth.authenticate(presented).await;
    let timer = auth.metrics().auth_timer(path);
    let identity = match result {
        Ok(identity) => identity,
        Err(error) => {
            observe_since(timer, started);
            return Err(Denied::unauthenticated(error, challenges));
        }
    };
    let decision = decide(route, Some(Principal { issuer: identity.issuer, scopes: &identity.scopes }));
    observe_since(timer, started);
    match Denied::by_policy(decision, challenges) {
        Some(denied) => Err(denied),
        None => Ok(identity),
    }
}
