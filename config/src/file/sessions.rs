//! `sessions:` (browser sign-in) as operators write it.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{OrderedMap, Text};

/// `sessions:` in the main file: the OpenID Connect client portcullis is
/// for browsers, and the cookie that carries a signed-in session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionsFile {
    /// An issuer from `issuers:`; its discovery document names the
    /// endpoints unless they are given here.
    pub issuer: Text,
    /// The origin browsers reach portcullis at (`https://app.example.com`).
    pub public_url: Text,
    pub client_id: Option<Text>,
    pub client_id_env: Option<Text>,
    /// `client_secret_basic` with the secret from this variable.
    pub client_secret_env: Option<Text>,
    /// Or `private_key_jwt` (RFC 7523) with a key file.
    pub private_key_jwt: Option<Spanned<PrivateKeyJwtFile>>,
    pub scopes: Option<Vec<Text>>,
    /// Extra authorization-request parameters (`resource`, `audience`, …).
    pub authorize_params: Option<OrderedMap<Text>>,
    /// `access_token` (default) or `id_token`.
    pub identity_from: Option<Text>,
    pub callback_path: Option<Text>,
    pub sign_in_path: Option<Text>,
    pub logout_path: Option<Text>,
    /// Where the browser lands after logout.
    pub post_logout_path: Option<Text>,
    pub authorization_endpoint: Option<Text>,
    pub token_endpoint: Option<Text>,
    pub end_session_endpoint: Option<Text>,
    pub cookie: Option<Spanned<SessionCookieFile>>,
    /// `cookie` (default) or `redis`.
    pub store: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrivateKeyJwtFile {
    /// PEM private key (EC P-256 or RSA), relative to the main file.
    pub key_file: Text,
    /// `ES256` (default for EC keys) or `RS256`.
    pub alg: Option<Text>,
    pub kid: Option<Text>,
    /// The assertion's `aud`: `token_endpoint` (default) or `issuer`.
    pub audience: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionCookieFile {
    pub name: Option<Text>,
    /// Variable with the sealing keys: base64 32-byte keys separated by
    /// commas or spaces, the first seals, all open.
    pub key_env: Option<Text>,
    pub max_age: Option<Text>,
    pub idle_timeout: Option<Text>,
}
