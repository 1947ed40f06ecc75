//! Answers the proxy gives itself, and the one mapping from every reason to
//! refuse (a malformed credential, a failed authentication, a policy
//! decision, a rate limit, a failure to proxy) to what the client receives:
//! status, JSON body, RFC 6750 challenge, and the outcome label of metrics
//! and logs. `portcullis explain` describes answers with the same mapping.

use std::borrow::Cow;

use credentials::bearer::BearerError;
use pingora::{Error, ErrorSource, ErrorType};
use policy::{CertificateVerdict, Decision};

use crate::auth::source::api_key::ApiKeyError;
use crate::auth::source::PresentationError;
use crate::auth::{AuthError, Challenges, Scheme};
use crate::labels::Outcome;
use crate::session::{Redirect, SignInError};
use config::CredentialKinds;

pub(crate) use super::rejection::{send, send_document, Rejection};

/// A refused request: what happened (for metrics and the access log) and
/// the answer, decided together so they cannot disagree.
#[derive(Debug, Clone)]
pub(crate) struct Denied {
    pub(crate) outcome: Outcome,
    pub(crate) rejection: Rejection,
}

impl Denied {
    fn new(outcome: Outcome, rejection: Rejection) -> Denied {
        Denied { outcome, rejection }
    }

    /// One line for `portcullis explain`: status, error code, description,
    /// outcome label and challenge, exactly as a client and the metrics
    /// would see them.
    pub(crate) fn describe(&self) -> String {
        let r = &self.rejection;
        let mut text = format!("{} {}: {} [decision: {}]", r.status, r.error, r.description, self.outcome.label());
        if let Some(challenge) = &r.www_authenticate {
            text.push_str("; WWW-Authenticate: ");
            text.push_str(challenge);
        }
        text
    }

    /// A route's `client_certs:` not met. 403 rather than 401: a 401 must
    /// carry a challenge (RFC 9110 section 15.5.2), and no HTTP
    /// authentication scheme asks for a TLS client certificate; the
    /// client has to reconnect with one.
    pub(crate) fn client_certificate(verdict: CertificateVerdict) -> Option<Denied> {
        let (outcome, error, description) = match verdict {
            CertificateVerdict::Accepted => return None,
            CertificateVerdict::Missing => (
                Outcome::ClientCertRequired,
                "client_certificate_required",
                "this route requires a client certificate (TLS), and the connection presented none",
            ),
            CertificateVerdict::NotAllowed => (
                Outcome::ClientCertRefused,
                "client_certificate_not_allowed",
                "the client certificate is not one this route accepts",
            ),
        };
        Some(Denied::new(outcome, Rejection::new(403, error, description)))
    }

    /// A request the proxy will not read as one thing: 400 (or 414/431).
    pub(crate) fn bad_request(status: u16, description: impl Into<Cow<'static, str>>) -> Denied {
        Denied::new(Outcome::BadRequest, Rejection::new(status, "invalid_request", description))
    }

    /// A request whose body boundaries two servers could read differently:
    /// 400, and the connection closes after the answer.
    pub(crate) fn bad_framing(description: &'static str) -> Denied {
        Denied::new(Outcome::BadRequest, Rejection::new(400, "invalid_request", description).closing())
    }

    /// A credential presented in a way RFC 6750 (or the API key scheme)
    /// does not allow.
    pub(crate) fn malformed_credential(error: PresentationError, challenges: &Challenges) -> Denied {
        match error {
            PresentationError::Bearer(BearerError::TooLarge) => {
                Denied::invalid_token("the token is too large", challenges)
            }
            PresentationError::ApiKey(ApiKeyError::Malformed) => {
                Denied::invalid_api_key("the API key is malformed", challenges)
            }
            PresentationError::ApiKey(ApiKeyError::Several) => Denied::new(
                Outcome::BadRequest,
                Rejection::new(400, "invalid_request", error.to_string())
                    .challenge(challenges.api_key_invalid_request()),
            ),
            other => Denied::new(
                Outcome::BadRequest,
                Rejection::new(400, "invalid_request", other.to_string()).challenge(challenges.invalid_request.clone()),
            ),
        }
    }

    /// A credential that did not authenticate.
    pub(crate) fn unauthenticated(error: AuthError, challenges: &Challenges) -> Denied {
        match error {
            AuthError::InvalidToken(description) => Denied::invalid_token(description, challenges),
            AuthError::InvalidApiKey(description) => Denied::invalid_api_key(description, challenges),
            AuthError::OverFailedAuthBudget { retry_after } => Denied::new(
                Outcome::RateLimited,
                Rejection::new(429, "rate_limited", "too many invalid credentials from this client; retry later")
                    .retry_after(retry_after)
                    .header("ratelimit", format!("\"failed_auth\";r=0;t={retry_after}")),
            ),
            AuthError::IssuerUnavailable { retry_after } => Denied::new(
                Outcome::IssuerUnavailable,
                Rejection::new(503, "temporarily_unavailable", "the token issuer's keys are not available yet")
                    .retry_after(retry_after),
            ),
        }
    }

    fn invalid_token(description: &'static str, challenges: &Challenges) -> Denied {
        Denied::new(
            Outcome::InvalidToken,
            Rejection::new(401, "invalid_token", description).challenge(challenges.invalid_token(description)),
        )
    }

    /// An API key that did not authenticate: 401 with the `ApiKey`
    /// challenge (the scheme the client used), never echoing the key.
    fn invalid_api_key(description: &'static str, challenges: &Challenges) -> Denied {
        Denied::new(
            Outcome::InvalidApiKey,
            Rejection::new(401, "invalid_key", description).challenge(challenges.invalid_api_key(description)),
        )
    }

    /// The policy's answer to a credential of `scheme`; `None` when the
    /// request may go upstream.
    pub(crate) fn by_policy(decision: Decision<'_>, challenges: &Challenges, scheme: Scheme) -> Option<Denied> {
        let (outcome, rejection) = match decision {
            Decision::Allow | Decision::Public => return None,
            Decision::Unauthenticated => return Some(Denied::credential_required(challenges, CredentialKinds::ANY)),
            Decision::IssuerNotAccepted if scheme == Scheme::ApiKey => {
                const WHY: &str = "the API key is not accepted for this resource";
                (
                    Outcome::IssuerNotAccepted,
                    Rejection::new(401, "invalid_key", WHY).challenge(challenges.invalid_api_key(WHY)),
                )
            }
            Decision::IssuerNotAccepted => {
                const WHY: &str = "the token's issuer is not accepted for this resource";
                (
                    Outcome::IssuerNotAccepted,
                    Rejection::new(401, "invalid_token", WHY).challenge(challenges.invalid_token(WHY)),
                )
            }
            Decision::InsufficientScope { required } => (
                Outcome::InsufficientScope,
                Rejection::new(403, "insufficient_scope", "the token lacks the scope this resource requires")
                    .challenge(challenges.insufficient_scope(scheme, required)),
            ),
            // Not insufficient_scope: no scope would help, and RFC 6750's
            // challenge would send the client for a token with more scope.
            // The caller is who it is (tenant, group): a plain 403 without
            // a challenge, as RFC 9110 allows.
            Decision::ClaimNotMet { .. } => (
                Outcome::ClaimNotMet,
                Rejection::new(403, "access_denied", "the token's claims do not permit access to this resource"),
            ),
            Decision::NoRoute => (
                Outcome::NoRoute,
                Rejection::new(403, "insufficient_scope", "access to this resource is not granted")
                    .challenge(challenges.insufficient_scope(scheme, "")),
            ),
        };
        Some(Denied::new(outcome, rejection))
    }

    /// No credential (of a kind the route `accepts`) where one is needed:
    /// 401 with a plain challenge for each scheme that would do.
    pub(crate) fn credential_required(challenges: &Challenges, accepts: CredentialKinds) -> Denied {
        let (challenge, description) = challenges.required(accepts);
        Denied::new(Outcome::Unauthenticated, Rejection::new(401, "unauthorized", description).challenge(challenge))
    }

    /// A limit refused the request: 429 with when to retry.
    pub(crate) fn rate_limited(limit: &str, policy: &str, retry_after: u64) -> Denied {
        Denied::new(
            Outcome::RateLimited,
            Rejection::new(429, "rate_limited", "too many requests; retry later")
                .retry_after(retry_after)
                .header("ratelimit-policy", policy.to_owned())
                .header("ratelimit", format!("\"{limit}\";r=0;t={retry_after}")),
        )
    }

    /// A `store: redis` limit with `on_store_error: deny` while Redis
    /// fails: 503, the limit cannot be checked.
    pub(crate) fn limit_unavailable(limit: &str) -> Denied {
        Denied::new(
            Outcome::LimitUnavailable,
            Rejection::new(503, "temporarily_unavailable", format!("the rate limit '{limit}' cannot be checked now"))
                .retry_after(1),
        )
    }

    /// Send the browser elsewhere (sign-in, back from the callback, after
    /// logout): 302 with the `Set-Cookie` values of the step. Not a
    /// refusal, but like one answered here and never forwarded.
    pub(crate) fn redirect(outcome: Outcome, redirect: Redirect) -> Denied {
        let mut rejection = Rejection::new(302, "redirect", "see Location").header("location", redirect.location);
        for cookie in redirect.cookies {
            rejection = rejection.header("set-cookie", cookie);
        }
        Denied::new(outcome, rejection)
    }

    /// A callback (or sign-in start) that did not sign the browser in.
    pub(crate) fn sign_in_failed(error: SignInError) -> Denied {
        let code = if error.status() >= 500 { "sign_in_unavailable" } else { "sign_in_failed" };
        Denied::new(Outcome::SignInFailed, Rejection::new(error.status(), code, error.to_string()))
    }

    /// An unsafe request authorised only by a session cookie that did not
    /// come from this origin: 403, the cookie must not act cross-site.
    pub(crate) fn cross_site() -> Denied {
        Denied::new(
            Outcome::CrossSiteRefused,
            Rejection::new(403, "cross_site_request", "a session may not be used by another site's request"),
        )
    }

    /// The session store (Redis) cannot be read: 503.
    pub(crate) fn session_unavailable() -> Denied {
        Denied::new(
            Outcome::SessionUnavailable,
            Rejection::new(503, "temporarily_unavailable", "the session cannot be read now").retry_after(1),
        )
    }

    /// The same answer, also setting `cookies` (a session renewed or ended
    /// on the way to the refusal).
    pub(crate) fn with_cookies(mut self, cookies: Vec<String>) -> Denied {
        for cookie in cookies {
            self.rejection = self.rejection.header("set-cookie", cookie);
        }
        self
    }

    /// The answer to a failure to proxy, given the outcome so far; `None`
    /// when the client is gone and nothing can be sent.
    pub(crate) fn proxy_failure(error: &Error, so_far: Outcome) -> Option<Denied> {
        let (outcome, rejection) = match (error.esource(), error.etype()) {
            (_, ErrorType::HTTPStatus(code)) => {
                let outcome = match code {
                    502 | 504 => Outcome::UpstreamError,
                    _ => so_far,
                };
                (outcome, Rejection::new(*code, "error", "request failed"))
            }
            (
                ErrorSource::Upstream,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => {
                (Outcome::UpstreamError, Rejection::new(504, "gateway_timeout", "the upstream did not answer in time"))
            }
            (ErrorSource::Upstream, _) => {
                (Outcome::UpstreamError, Rejection::new(502, "bad_gateway", "the upstream is unreachable"))
            }
            _ if is_client_disconnect(error) => return None,
            (ErrorSource::Downstream, _) => {
                (Outcome::BadRequest, Rejection::new(400, "invalid_request", "the request is malformed"))
            }
            (ErrorSource::Internal | ErrorSource::Unset, _) => {
                (so_far, Rejection::new(500, "internal_error", "the proxy failed to handle the request"))
            }
        };
        Some(Denied::new(outcome, rejection))
    }
}

/// The client closed or broke its connection: normal for mobile clients and
/// load generators, nothing an operator can act on.
pub(crate) fn is_client_disconnect(error: &Error) -> bool {
    *error.esource() == ErrorSource::Downstream
        && matches!(error.etype(), ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges() -> Challenges {
        Challenges::new("api", CredentialKinds { bearer: true, api_key: false, session: false })
    }

    #[test]
    fn policy_decisions_map_to_rfc_6750_answers() {
        assert!(Denied::by_policy(Decision::Allow, &challenges(), Scheme::Bearer).is_none());
        assert!(Denied::by_policy(Decision::Public, &challenges(), Scheme::Bearer).is_none());
        let denied = Denied::by_policy(Decision::Unauthenticated, &challenges(), Scheme::Bearer).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::Unauthenticated, 401));
        assert_eq!(denied.rejection.www_authenticate.as_deref(), Some("Bearer realm=\"api\""));
        let denied =
            Denied::by_policy(Decision::InsufficientScope { required: "a b" }, &challenges(), Scheme::Bearer).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::InsufficientScope, 403));
        assert_eq!(
            denied.rejection.www_authenticate.as_deref(),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"a b\"")
        );
        let denied = Denied::by_policy(Decision::NoRoute, &challenges(), Scheme::Bearer).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::NoRoute, 403));
        let condition = policy::ClaimCondition {
            claim: policy::ClaimId(0),
            name: "tenant".into(),
            condition: policy::Condition::Exists(true),
        };
        let denied =
            Denied::by_policy(Decision::ClaimNotMet { condition: &condition }, &challenges(), Scheme::Bearer).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::ClaimNotMet, 403));
        assert_eq!(denied.rejection.error, "access_denied");
        assert!(denied.rejection.www_authenticate.is_none());
        let denied = Denied::by_policy(Decision::IssuerNotAccepted, &challenges(), Scheme::Bearer).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::IssuerNotAccepted, 401));
    }

    #[test]
    fn credential_errors_map_to_their_answers() {
        let denied = Denied::malformed_credential(BearerError::TooLarge.into(), &challenges());
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::InvalidToken, 401));
        let denied = Denied::malformed_credential(BearerError::SeveralMethods.into(), &challenges());
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::BadRequest, 400));
        let denied = Denied::unauthenticated(AuthError::IssuerUnavailable { retry_after: 7 }, &challenges());
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::IssuerUnavailable, 503));
        assert_eq!(denied.rejection.retry_after, Some(7));
        assert!(denied.rejection.www_authenticate.is_none());
    }

    #[test]
    fn api_key_errors_answer_with_the_api_key_scheme() {
        let both = Challenges::new("api", CredentialKinds::ANY);
        let denied = Denied::unauthenticated(AuthError::InvalidApiKey("the API key has expired"), &both);
        assert_eq!(
            (denied.outcome, denied.rejection.status, denied.rejection.error),
            (Outcome::InvalidApiKey, 401, "invalid_key")
        );
        assert_eq!(
            denied.rejection.www_authenticate.as_deref(),
            Some("ApiKey realm=\"api\", error=\"invalid_key\", error_description=\"the API key has expired\"")
        );
        let denied = Denied::malformed_credential(ApiKeyError::Malformed.into(), &both);
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::InvalidApiKey, 401));
        let denied = Denied::malformed_credential(ApiKeyError::Several.into(), &both);
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::BadRequest, 400));
        let denied = Denied::malformed_credential(PresentationError::SeveralKinds, &both);
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::BadRequest, 400));
        // No credential: a challenge per scheme the route accepts.
        let denied = Denied::credential_required(&both, CredentialKinds::ANY);
        assert_eq!(denied.rejection.www_authenticate.as_deref(), Some("Bearer realm=\"api\", ApiKey realm=\"api\""));
        let keys_only = CredentialKinds { bearer: false, api_key: true, session: false };
        let denied = Denied::credential_required(&both, keys_only);
        assert_eq!(denied.rejection.www_authenticate.as_deref(), Some("ApiKey realm=\"api\""));
        assert_eq!(denied.rejection.description, "an API key is required");
        // Without api_keys configured, nothing changes for bearer clients.
        let denied = Denied::credential_required(&challenges(), CredentialKinds::ANY);
        assert_eq!(denied.rejection.www_authenticate.as_deref(), Some("Bearer realm=\"api\""));
        let scope = Denied::by_policy(Decision::InsufficientScope { required: "a" }, &both, Scheme::ApiKey).unwrap();
        assert_eq!(
            scope.rejection.www_authenticate.as_deref(),
            Some("ApiKey realm=\"api\", error=\"insufficient_scope\", scope=\"a\"")
        );
    }

    #[test]
    fn proxy_failures_map_by_source() {
        let upstream = |etype| {
            let mut error = Error::new(etype);
            error.esource = ErrorSource::Upstream;
            error
        };
        let down = |etype| {
            let mut error = Error::new(etype);
            error.esource = ErrorSource::Downstream;
            error
        };
        let timeout = Denied::proxy_failure(&upstream(ErrorType::ReadTimedout), Outcome::Allow).unwrap();
        assert_eq!((timeout.outcome, timeout.rejection.status), (Outcome::UpstreamError, 504));
        let refused = Denied::proxy_failure(&upstream(ErrorType::ConnectRefused), Outcome::Allow).unwrap();
        assert_eq!((refused.outcome, refused.rejection.status), (Outcome::UpstreamError, 502));
        assert!(Denied::proxy_failure(&down(ErrorType::ConnectionClosed), Outcome::Allow).is_none());
        assert!(is_client_disconnect(&down(ErrorType::ReadError)));
        let malformed = Denied::proxy_failure(&down(ErrorType::InvalidHTTPHeader), Outcome::Allow).unwrap();
        assert_eq!((malformed.outcome, malformed.rejection.status), (Outcome::BadRequest, 400));
        let internal = Denied::proxy_failure(&Error::new(ErrorType::InternalError), Outcome::Allow).unwrap();
        assert_eq!((internal.outcome, internal.rejection.status), (Outcome::Allow, 500));
    }
}
