//! What happened to a request, as one small enum: the `decision` label of
//! metrics and the access log.

use policy::Decision;

use crate::auth::AuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// Not decided (the request failed before admission finished).
    Undecided,
    Public,
    Allow,
    Unauthenticated,
    InvalidToken,
    IssuerUnavailable,
    IssuerNotAccepted,
    InsufficientScope,
    NoRoute,
    RateLimited,
    BadRequest,
    UpstreamError,
}

impl Outcome {
    pub const COUNT: usize = 12;

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Undecided => "none",
            Outcome::Public => "public",
            Outcome::Allow => "allow",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::InvalidToken => "invalid_token",
            Outcome::IssuerUnavailable => "issuer_unavailable",
            Outcome::IssuerNotAccepted => "issuer_not_accepted",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::NoRoute => "no_route",
            Outcome::RateLimited => "rate_limited",
            Outcome::BadRequest => "bad_request",
            Outcome::UpstreamError => "upstream_error",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Forwarded to the upstream.
    pub fn is_forwarded(self) -> bool {
        matches!(self, Outcome::Public | Outcome::Allow)
    }
}

impl From<Decision<'_>> for Outcome {
    fn from(decision: Decision<'_>) -> Outcome {
        match decision {
            Decision::Public => Outcome::Public,
            Decision::Allow => Outcome::Allow,
            Decision::Unauthenticated => Outcome::Unauthenticated,
            Decision::IssuerNotAccepted => Outcome::IssuerNotAccepted,
            Decision::InsufficientScope { .. } => Outcome::InsufficientScope,
            Decision::NoRoute => Outcome::NoRoute,
        }
    }
}

impl From<AuthError> for Outcome {
    fn from(error: AuthError) -> Outcome {
        match error {
            AuthError::InvalidToken(_) => Outcome::InvalidToken,
            AuthError::IssuerUnavailable { .. } => Outcome::IssuerUnavailable,
        }
    }
}
