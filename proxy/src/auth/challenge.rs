//! The `WWW-Authenticate` challenges of RFC 6750 section 3, built once per
//! configuration (the realm is configured) instead of per refusal.

/// Precomputed `WWW-Authenticate` values (RFC 6750 section 3).
#[derive(Debug, Clone)]
pub(crate) struct Challenges {
    /// No credentials: no error code.
    pub(crate) plain: String,
    pub(crate) invalid_request: String,
    /// Prefix for `invalid_token` and `insufficient_scope`.
    realm: String,
}

impl Challenges {
    pub(crate) fn new(realm: &str) -> Challenges {
        let realm = format!("Bearer realm=\"{realm}\"");
        Challenges { plain: realm.clone(), invalid_request: format!("{realm}, error=\"invalid_request\""), realm }
    }

    pub(crate) fn invalid_token(&self, description: &str) -> String {
        format!("{}, error=\"invalid_token\", error_description=\"{}\"", self.realm, description)
    }

    pub(crate) fn insufficient_scope(&self, scope: &str) -> String {
        if scope.is_empty() {
            format!("{}, error=\"insufficient_scope\"", self.realm)
        } else {
            format!("{}, error=\"insufficient_scope\", scope=\"{}\"", self.realm, scope)
        }
    }
}
