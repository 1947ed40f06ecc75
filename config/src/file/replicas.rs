//! `redis:` and `revocation:` as operators write them.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Text;

/// `redis:` in the main file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisFile {
    /// One server (standalone), or use `urls`.
    pub url: Option<Text>,
    /// Cluster seed nodes, or the Sentinels.
    pub urls: Option<Vec<Text>>,
    /// `standalone` (default), `cluster` or `sentinel`.
    pub mode: Option<Text>,
    /// Sentinel: the monitored master's name.
    pub master_name: Option<Text>,
    pub username_env: Option<Text>,
    pub password_env: Option<Text>,
    /// CA bundle (PEM) for `rediss://` servers with a private CA.
    pub ca_file: Option<Text>,
    pub key_prefix: Option<Text>,
    pub connect_timeout: Option<Text>,
    pub command_timeout: Option<Text>,
    /// `/readyz` fails while Redis is unavailable (default: only reported).
    pub required_for_readiness: Option<Spanned<bool>>,
    /// Environment variable holding the key of the HMAC every stored key
    /// is hashed with (the same on every replica).
    pub hash_key_env: Text,
}

/// `revocation:` in the main file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevocationFile {
    /// The longest lifetime of a token any issuer hands out: a subject
    /// revocation is kept this long.
    pub max_token_lifetime: Option<Text>,
    /// Most revocations held in memory.
    pub max_entries: Option<Spanned<u64>>,
}
