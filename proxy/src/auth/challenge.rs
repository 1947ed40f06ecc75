//! The `WWW-Authenticate` challenges of RFC 6750 section 3 (and their
//! `ApiKey` counterparts), built once per configuration (the realm is
//! configured) instead of per refusal.

use config::CredentialKinds;

/// The authentication scheme a challenge is for: the one the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    ApiKey,
}

/// Precomputed `WWW-Authenticate` values (RFC 6750 section 3).
#[derive(Debug, Clone)]
pub(crate) struct Challenges {
    /// No credentials: no error code.
    pub(crate) plain: String,
    pub(crate) invalid_request: String,
    /// Prefix for `invalid_token` and `insufficient_scope`.
    realm: String,
    /// `ApiKey realm="…"`: the challenge of the API key scheme.
    api_key: String,
    /// The kinds this configuration accepts at all.
    configured: CredentialKinds,
}

impl Challenges {
    pub(crate) fn new(realm_name: &str, configured: CredentialKinds) -> Challenges {
        let realm = format!("Bearer realm=\"{realm_name}\"");
        Challenges {
            plain: realm.clone(),
            invalid_request: format!("{realm}, error=\"invalid_request\""),
            realm,
            api_key: format!("ApiKey realm=\"{realm_name}\""),
            configured,
        }
    }

    pub(crate) fn invalid_token(&self, description: &str) -> String {
        format!("{}, error=\"invalid_token\", error_description=\"{}\"", self.realm, description)
    }

    /// An API key that did not authenticate.
    pub(crate) fn invalid_api_key(&self, description: &str) -> String {
        format!("{}, error=\"invalid_key\", error_description=\"{}\"", self.api_key, description)
    }

    /// An API key presented in a way that cannot be read as one key.
    pub(crate) fn api_key_invalid_request(&self) -> String {
        format!("{}, error=\"invalid_request\"", self.api_key)
    }

    /// No usable credential where `accepted` (and configured) kinds would
    /// do: one challenge per scheme (RFC 9110 section 11.6.1), and which
    /// credential the description asks for.
    pub(crate) fn required(&self, accepted: CredentialKinds) -> (String, &'static str) {
        let bearer = accepted.bearer && self.configured.bearer;
        let api_key = accepted.api_key && self.configured.api_key;
        let session = accepted.session && self.configured.session;
        match (bearer, api_key, session) {
            (true, true, _) => {
                (format!("{}, {}", self.plain, self.api_key), "a bearer token or an API key is required")
            }
            (false, true, _) => (self.api_key.clone(), "an API key is required"),
            (false, false, true) => (self.plain.clone(), "sign in is required"),
            _ => (self.plain.clone(), "a bearer token is required"),
        }
    }

    pub(crate) fn insufficient_scope(&self, scheme: Scheme, scope: &str) -> String {
        let realm = match scheme {
            Scheme::Bearer => &self.realm,
            Scheme::ApiKey => &self.api_key,
        };
        if scope.is_empty() {
            format!("{realm}, error=\"insufficient_scope\"")
        } else {
            format!("{realm}, error=\"insufficient_scope\", scope=\"{scope}\"")
        }
    }
}
