//! The verified-token cache: a token that verified once is not verified
//! again until it expires.
//!
//! Keyed by the SHA-256 of the token (the token itself is never stored),
//! bounded by entry count with S3-FIFO eviction (quick_cache), so millions of
//! distinct tokens cost at most `max_entries` entries. Only successful
//! verifications are cached: a flood of invalid tokens adds nothing.

use std::sync::Arc;

use aws_lc_rs::digest;

use super::Identity;

/// SHA-256 of a credential: the cache key (the credential itself is never kept).
pub(crate) type TokenDigest = [u8; 32];

/// The cache key of a credential.
pub fn digest(token: &str) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Shards of the cache (rounded to a power of two; fewer for a small cache).
const CACHE_SHARDS: usize = 256;

/// A bounded cache of `capacity` entries (more than 0) for the request
/// path, in many more shards than quick_cache's default (4 per core): a
/// hit takes its shard's read lock, one atomic write to a word that every
/// core hitting that shard shares. At least 64 entries a shard, and a
/// capacity the shards divide exactly, so the bound stays `capacity`, not a
/// rounded-up one.
pub(crate) fn sharded<K, V>(capacity: usize) -> quick_cache::sync::Cache<K, V>
where
    K: Eq + std::hash::Hash,
    V: Clone,
{
    let shards = (capacity / 64).clamp(1, CACHE_SHARDS);
    let shards = 1usize << shards.ilog2();
    let bounded = (capacity / shards * shards).max(1);
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(bounded)
        .weight_capacity(bounded as u64)
        .shards(shards)
        .build();
    match options {
        Ok(options) => quick_cache::sync::Cache::with_options(
            options,
            quick_cache::UnitWeighter,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        ),
        Err(_) => quick_cache::sync::Cache::new(capacity),
    }
}

/// Verified identities by credential digest, bounded by entry count.
pub struct TokenCache {
    entries: Option<quick_cache::sync::Cache<TokenDigest, Arc<Identity>>>,
}

impl TokenCache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> TokenCache {
        let entries = (capacity > 0).then(|| sharded(capacity));
        TokenCache { entries }
    }

    pub fn get(&self, key: &TokenDigest) -> Option<Arc<Identity>> {
        self.entries.as_ref()?.get(key)
    }

    pub fn insert(&self, key: TokenDigest, identity: Arc<Identity>) {
        if let Some(entries) = &self.entries {
            entries.insert(key, identity);
        }
    }

    pub fn remove(&self, key: &TokenDigest) {
        if let Some(entries) = &self.entries {
            entries.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{IssuerId, ScopeSet};

    fn identity(n: u64) -> Arc<Identity> {
        Arc::new(Identity {
            issuer: IssuerId(0),
            issuer_uid: 1,
            key_id: None,
            subject: Some(format!("user-{n}").into()),
            jti: None,
            issued_at: None,
            scopes: ScopeSet::default(),
            headers: Box::new([]),
            valid_until: u64::MAX,
            claims: policy::ClaimValues::default(),
            binding: crate::auth::CertificateBinding::Unbound,
        })
    }

    #[test]
    fn stays_bounded_under_many_distinct_tokens() {
        let cache = TokenCache::new(1_000);
        for n in 0..50_000u64 {
            cache.insert(digest(&format!("token-{n}")), identity(n));
        }
        assert!(cache.len() <= 1_000, "{}", cache.len());
        assert!(cache.len() >= 500, "{}", cache.len());
    }

    #[test]
    fn finds_what_it_stored() {
        let cache = TokenCache::new(10);
        let key = digest("a.b.c");
        cache.insert(key, identity(1));
        assert_eq!(cache.get(&key).unwrap().subject.as_deref(), Some("user-1"));
        assert!(cache.get(&digest("a.b.d")).is_none());
        cache.remove(&key);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn zero_capacity_disables_it() {
        let cache = TokenCache::new(0);
        cache.insert(digest("x"), identity(1));
        assert!(cache.get(&digest("x")).is_none());
        assert!(cache.is_empty());
    }
}
