//! Answers the proxy gives itself, and the one mapping from every reason to
//! refuse (a malformed credential, a failed authentication, a policy
//! decision, a rate limit, a failure to proxy) to what the client receives:
//! status, JSON body, RFC 6750 challenge, and the outcome label of metrics
//! and logs. `portcullis explain` describes answers with the same mapping.

use std::borrow::Cow;

use bytes::Bytes;
use credentials::bearer::BearerError;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::{Error, ErrorSource, ErrorType};
use policy::Decision;

use crate::auth::source::PresentationError;
use crate::auth::{AuthError, Challenges};
use crate::labels::Outcome;

/// A refused request: what happened (for metrics and the access log) and
/// the answer, decided together so they cannot disagree.
#[derive(Debug, Clone)]
pub(crate) struct Denied {
    pub(crate) outcome: Outcome,
    pub(crate) rejection: Rejection,
}

/// The answer to a refused request, fully described before anything is
/// written.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub(crate) status: u16,
    /// `error` in the JSON body.
    pub(crate) error: &'static str,
    pub(crate) description: Cow<'static, str>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) retry_after: Option<u64>,
    /// Extra headers (rate-limit policy and state).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Rejection {
    pub(crate) fn new(status: u16, error: &'static str, description: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            status,
            error,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn challenge(mut self, value: String) -> Rejection {
        self.www_authenticate = Some(value);
        self
    }

    pub(crate) fn retry_after(mut self, seconds: u64) -> Rejection {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: String) -> Rejection {
        self.headers.push((name, value));
        self
    }

    fn body(&self) -> Bytes {
        let body = serde_json::json!({ "error": self.error, "error_description": self.description });
        Bytes::from(body.to_string())
    }
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

    /// A request the proxy will not read as one thing: 400 (or 414/431).
    pub(crate) fn bad_request(status: u16, description: impl Into<Cow<'static, str>>) -> Denied {
        Denied::new(Outcome::BadRequest, Rejection::new(status, "invalid_request", description))
    }

    /// A credential presented in a way RFC 6750 does not allow.
    pub(crate) fn malformed_credential(error: PresentationError, challenges: &Challenges) -> Denied {
        match error {
            PresentationError::Bearer(BearerError::TooLarge) => {
                Denied::invalid_token("the token is too large", challenges)
            }
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

    /// The policy's answer; `None` when the request may go upstream.
    pub(crate) fn by_policy(decision: Decision<'_>, challenges: &Challenges) -> Option<Denied> {
        let (outcome, rejection) = match decision {
            Decision::Allow | Decision::Public => return None,
            Decision::Unauthenticated => return Some(Denied::credential_required(challenges)),
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
                    .challenge(challenges.insufficient_scope(required)),
            ),
            Decision::NoRoute => (
                Outcome::NoRoute,
                Rejection::new(403, "insufficient_scope", "access to this resource is not granted")
                    .challenge(challenges.insufficient_scope("")),
            ),
        };
        Some(Denied::new(outcome, rejection))
    }

    /// No credential where one is needed: 401 with a plain challenge.
    pub(crate) fn credential_required(challenges: &Challenges) -> Denied {
        Denied::new(
            Outcome::Unauthenticated,
            Rejection::new(401, "unauthorized", "a bearer token is required").challenge(challenges.plain.clone()),
        )
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

/// Write the rejection as the whole response.
pub(crate) async fn send(session: &mut Session, rejection: &Rejection) -> pingora::Result<()> {
    let body = rejection.body();
    let mut header = ResponseHeader::build(rejection.status, Some(8))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    header.insert_header("cache-control", "no-store")?;
    if let Some(challenge) = &rejection.www_authenticate {
        header.insert_header("www-authenticate", challenge.as_str())?;
    }
    if let Some(seconds) = rejection.retry_after {
        header.insert_header("retry-after", seconds.to_string())?;
    }
    for (name, value) in &rejection.headers {
        header.insert_header(*name, value.as_str())?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges() -> Challenges {
        Challenges::new("api")
    }

    #[test]
    fn policy_decisions_map_to_rfc_6750_answers() {
        assert!(Denied::by_policy(Decision::Allow, &challenges()).is_none());
        assert!(Denied::by_policy(Decision::Public, &challenges()).is_none());
        let denied = Denied::by_policy(Decision::Unauthenticated, &challenges()).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::Unauthenticated, 401));
        assert_eq!(denied.rejection.www_authenticate.as_deref(), Some("Bearer realm=\"api\""));
        let denied = Denied::by_policy(Decision::InsufficientScope { required: "a b" }, &challenges()).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::InsufficientScope, 403));
        assert_eq!(
            denied.rejection.www_authenticate.as_deref(),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"a b\"")
        );
        let denied = Denied::by_policy(Decision::NoRoute, &challenges()).unwrap();
        assert_eq!((denied.outcome, denied.rejection.status), (Outcome::NoRoute, 403));
        let denied = Denied::by_policy(Decision::IssuerNotAccepted, &challenges()).unwrap();
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
