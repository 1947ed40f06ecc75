//! `upstream_assertion:` as operators write it.

use serde::Deserialize;

use super::Text;

/// A JWT portcullis signs for each request it forwards, so an upstream can
/// check the request came through it, authorised for that method and path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssertionFile {
    /// `iss` of the assertions (a URL naming this gateway).
    pub issuer: Text,
    /// PKCS#8 PEM: EC P-256 (ES256) or Ed25519 (EdDSA).
    pub key_file: Text,
    /// `ES256` (default) or `EdDSA`.
    pub alg: Option<Text>,
    /// Keys published but not used to sign: the next one before it signs,
    /// the previous one until its last assertion has expired.
    pub published_key_files: Option<Vec<Text>>,
    /// Header name (default `X-Portcullis-Assertion`).
    pub header: Option<Text>,
    /// Lifetime of each assertion (default 30s, at most 5m).
    pub lifetime: Option<Text>,
    /// Where the public keys are served as a JWKS on `listen`.
    pub jwks_path: Option<Text>,
}
