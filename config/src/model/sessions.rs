//! Browser sign-in: the OpenID Connect client and the session cookie.

use std::time::Duration;

use super::Secret;

/// `sessions:`: how browsers sign in and how their sessions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Index into `Config::issuers`: the issuer that signs browsers in.
    pub issuer: usize,
    /// The origin browsers use, without a trailing slash
    /// (`https://app.example.com`): redirect URIs and the same-origin check
    /// of unsafe requests are built from it.
    pub public_origin: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// Always includes `openid`.
    pub scopes: Vec<String>,
    /// Extra parameters of the authorization request, in file order.
    pub authorize_params: Vec<(String, String)>,
    pub identity_from: IdentitySource,
    pub callback_path: String,
    pub sign_in_path: String,
    pub logout_path: String,
    pub post_logout_path: String,
    /// Overrides of what discovery says; required where the issuer has no
    /// discovery.
    pub endpoints: EndpointOverrides,
    pub cookie: CookieSettings,
    pub store: SessionStore,
}

impl SessionSettings {
    /// The `redirect_uri` the IdP sends browsers back to.
    pub fn redirect_uri(&self) -> String {
        format!("{}{}", self.public_origin, self.callback_path)
    }
}

/// How portcullis authenticates to the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 2.3.1).
    Secret(Secret),
    /// `private_key_jwt` (OpenID Connect Core 9, RFC 7523): a signed
    /// assertion per call.
    PrivateKeyJwt { key_pem: Secret, alg: SigningAlg, kid: Option<String>, audience: AssertionAudience },
}

/// The `aud` of a client assertion: OpenID Connect says the token
/// endpoint; some IdPs (Auth0) want their issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAudience {
    TokenEndpoint,
    Issuer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Es256,
    Rs256,
}

impl SigningAlg {
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
        }
    }
}

/// Where a session's scopes and identity-header values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// The access token, verified like a bearer token on every request (so
    /// `scopes:` mean the same for browsers and API clients).
    AccessToken,
    /// The ID token's claims, verified once at sign-in.
    IdToken,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    pub authorization: Option<String>,
    pub token: Option<String>,
    pub end_session: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    pub name: String,
    /// AES-256 keys; the first seals, every one opens.
    pub keys: Vec<Secret>,
    /// A session ends this long after sign-in.
    pub max_age: Duration,
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// The whole session, sealed, in the cookie.
    Cookie,
    /// The session in Redis (sealed), an opaque id in the cookie: logout
    /// and revocation end it everywhere at once.
    Redis,
}
