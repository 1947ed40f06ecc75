//! What replicas share: how to reach Redis, and the revocation bounds.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;

/// How to reach Redis (or Valkey: same protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub mode: RedisMode,
    /// `redis://` or `rediss://` URLs: the server, the cluster's seed nodes,
    /// or the Sentinels. Without credentials (those come from `username`
    /// and `password`).
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM CA bundle for `rediss://` with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Prepended to every key and channel.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    /// No request waits longer than this for Redis.
    pub command_timeout: Duration,
    /// `/readyz` fails while Redis is unavailable.
    pub required_for_readiness: bool,
    /// HMAC key for every stored key: no raw username, address or header
    /// value is ever written to Redis.
    pub hash_key: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    Standalone,
    Cluster,
    /// Sentinels that name the current master `master_name`.
    Sentinel {
        master_name: String,
    },
}

impl RedisMode {
    pub fn name(&self) -> &'static str {
        match self {
            RedisMode::Standalone => "standalone",
            RedisMode::Cluster => "cluster",
            RedisMode::Sentinel { .. } => "sentinel",
        }
    }
}

/// Token revocation bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSettings {
    /// The longest lifetime of any token: a subject revocation ("every
    /// token issued before T") is kept until T plus this, when every token
    /// it covers has expired.
    pub max_token_lifetime: Duration,
    /// Most revocations held (each replica holds them all in memory).
    pub max_entries: usize,
}

impl Default for RevocationSettings {
    fn default() -> RevocationSettings {
        RevocationSettings { max_token_lifetime: Duration::from_secs(24 * 3600), max_entries: 100_000 }
    }
}
