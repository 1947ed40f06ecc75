//! Issuers: who signs the tokens portcullis accepts, with which keys and
//! algorithms, and which of their tokens are meant for this API.

use std::fmt;
use std::time::Duration;

use super::ClaimPath;

/// JWS algorithms an issuer may be pinned to. `none` has no variant: it
/// cannot be configured, so it can never be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The exact `alg` header value (case-sensitive, RFC 7515).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Shared-secret algorithms; never mixed with public-key ones on one
    /// issuer (that mix is how HS256-signed-with-the-public-key forgeries work).
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A secret read from the environment. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Secret {
        Secret(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS at a known URL.
    Jwks { uri: String },
    /// OIDC discovery at `{issuer}/.well-known/openid-configuration`.
    Discovery { url: String },
    /// A shared HMAC secret. `None` only when loaded for `check` with the
    /// variable unset (reported as a warning there, an error for `run`).
    Secret { env: String, secret: Option<Secret> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub name: String,
    /// Exact `iss` value.
    pub issuer: String,
    pub keys: KeySource,
    /// Accepted `aud` values; empty only with `any_audience`.
    pub audiences: Vec<String>,
    pub any_audience: bool,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub scope_claims: Vec<ClaimPath>,
    /// Accepted `typ` header values, lower case; empty accepts any.
    pub token_types: Vec<String>,
    pub jwks_refresh: Duration,
    pub min_refresh_interval: Duration,
    /// Timeout of every call to this issuer (discovery, JWKS, introspection).
    pub http_timeout: Duration,
    pub introspection: Option<Introspection>,
    /// The claims that hold the token's audience (`aud` by default); one
    /// of their values must be in `audiences` unless `any_audience`.
    pub audience_claims: Vec<ClaimPath>,
    /// Claims every token of this issuer must carry with one of the given
    /// values (how an IdP's ID tokens are told from its access tokens).
    pub required_claims: Vec<RequiredClaim>,
    /// Tokens must be bound to the client certificate of the connection
    /// they arrive on (RFC 8705); unbound ones are refused.
    pub require_bound_tokens: bool,
}

impl Issuer {
    /// Whether the audience is read from `aud` alone, the way the JWT
    /// library checks it; any other `audience_claims` is checked after
    /// decoding.
    pub fn audience_is_aud(&self) -> bool {
        matches!(self.audience_claims.as_slice(), [only] if only.0 == ["aud"])
    }
}

/// A claim a token must carry with one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    pub claim: ClaimPath,
    pub values: Vec<RequiredValue>,
}

/// A value a required claim may have: the claim must be exactly this JSON
/// string or boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredValue {
    String(String),
    Bool(bool),
}

/// RFC 7662 introspection of opaque tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// `None`: taken from discovery.
    pub endpoint: Option<String>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_secret_env: String,
    pub max_ttl: Duration,
    pub negative_ttl: Duration,
    pub max_entries: usize,
    /// Introspection calls per second, at most; tokens beyond it get 503.
    pub max_calls_per_second: u32,
}
