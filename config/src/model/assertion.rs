//! The signed identity assertion towards upstreams.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;

/// `upstream_assertion:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionSettings {
    pub issuer: String,
    /// The signing key (PKCS#8 DER), and where it was read from.
    pub key: AssertionKey,
    /// Keys published but not used to sign (the next, or the previous,
    /// during a roll-over).
    pub published: Vec<AssertionKey>,
    /// Lower-case header name.
    pub header: String,
    pub lifetime: Duration,
    pub jwks_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionKey {
    pub file: PathBuf,
    pub alg: AssertionAlg,
    pub pkcs8: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    Es256,
    EdDsa,
}

impl AssertionAlg {
    pub fn name(self) -> &'static str {
        match self {
            AssertionAlg::Es256 => "ES256",
            AssertionAlg::EdDsa => "EdDSA",
        }
    }
}
