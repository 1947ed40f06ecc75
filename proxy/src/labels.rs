//! The fixed label values of metrics and the access log: what happened to
//! a request ([`Outcome`]) and how its credential was checked
//! ([`AuthPath`]). A leaf module: `metrics` and the request path both
//! depend on it, it depends on nothing of this crate.

/// Route label for requests that matched no route.
pub(crate) const NO_ROUTE: &str = "(none)";

/// Defines a label enum together with the list of all its values, so the
/// count that sizes per-value arrays cannot drift from the variants.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order (`index` is the position).
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// How many values there are.
            pub(crate) const COUNT: usize = $name::ALL.len();

            /// The label value.
            pub(crate) fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// Position in [`Self::ALL`], for per-value arrays.
            pub(crate) fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_enum! {
    /// What happened to a request: the `decision` label of
    /// `portcullis_requests_total` and of the access log.
    Outcome {
        /// Not decided (the request failed before admission finished).
        Undecided => "none",
        Public => "public",
        Allow => "allow",
        Unauthenticated => "unauthenticated",
        InvalidToken => "invalid_token",
        /// An API key that is malformed, unknown or expired.
        InvalidApiKey => "invalid_api_key",
        IssuerUnavailable => "issuer_unavailable",
        IssuerNotAccepted => "issuer_not_accepted",
        InsufficientScope => "insufficient_scope",
        ClaimNotMet => "claim_not_met",
        NoRoute => "no_route",
        RateLimited => "rate_limited",
        /// A Redis-backed limit that cannot be checked, with
        /// `on_store_error: deny` (503).
        LimitUnavailable => "limit_unavailable",
        /// A CORS preflight answered by the proxy (never forwarded).
        Preflight => "preflight",
        /// A CORS preflight refused (origin, method or header not allowed).
        CorsRefused => "cors_refused",
        /// A browser without a session sent to sign in (302 to the IdP).
        SignIn => "sign_in",
        /// A sign-in completed at the callback (302 back to the app).
        SignedIn => "signed_in",
        /// A callback that did not complete a sign-in.
        SignInFailed => "sign_in_failed",
        /// The logout path: session ended.
        SignedOut => "signed_out",
        /// An unsafe request carrying only a session cookie, not from this
        /// origin (CSRF).
        CrossSiteRefused => "cross_site_refused",
        /// The session store (Redis) could not be read (503).
        SessionUnavailable => "session_unavailable",
        /// A route requiring a client certificate, over a connection
        /// without a verified one (403).
        ClientCertRequired => "client_cert_required",
        /// A verified client certificate the route does not accept (403).
        ClientCertRefused => "client_cert_refused",
        BadRequest => "bad_request",
        UpstreamError => "upstream_error",
    }
}

label_enum! {
    /// How a credential was checked: the `source` label of
    /// `portcullis_auth_duration_seconds`.
    AuthPath {
        /// The verified-token cache answered.
        Cache => "cache",
        /// A JWS was verified against the issuer's keys.
        Verified => "verify",
        /// An opaque token was introspected (RFC 7662).
        Introspected => "introspect",
        /// An API key was looked up (never cached: the lookup is as cheap).
        ApiKey => "api_key",
        /// Refused before or during verification.
        Rejected => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_list_of_all_values() {
        for (position, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), position);
        }
        for (position, path) in AuthPath::ALL.iter().enumerate() {
            assert_eq!(path.index(), position);
        }
        assert_eq!(Outcome::COUNT, 25);
        assert_eq!(AuthPath::COUNT, 5);
    }

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), Outcome::COUNT);
    }
}
