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

/// How many seconds an identity verified now may be trusted under a
/// configured bound `limit` (`token_cache.ttl`, an introspection
/// `max_ttl`): the limit less up to a quarter of it, by a share the
/// credential's digest picks (the same credential always gets the same
/// share).
///
/// Identities verified together (at a start, after a reload, in a burst of
/// sign-ins) would otherwise all lapse in the same second, one limit later
/// and every limit after that: each active client's next request would then
/// go back to the signature check or the introspection endpoint at once.
/// With 10,000 active tokens on one core, each such second halved the
/// cache hits per second for two seconds. Spread over a quarter of the
/// limit, the same checks come as a steady trickle instead.
pub(crate) fn lifetime(limit: std::time::Duration, digest: &TokenDigest) -> u64 {
    let limit = limit.as_secs();
    let share = u128::from(u16::from_le_bytes([digest[0], digest[1]]));
    // (limit / 4) × share / 2^16, in u128 so that no limit overflows; the
    // result is below limit / 4, so it fits back.
    let cut = u64::try_from((u128::from(limit / 4) * share) >> 16).unwrap_or(0);
    limit - cut
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
    fn lifetimes_spread_over_the_last_quarter_of_the_limit() {
        let limit = std::time::Duration::from_secs(300);
        let mut per_second = std::collections::BTreeMap::<u64, usize>::new();
        for n in 0..10_000u64 {
            let key = digest(&format!("token-{n}"));
            let seconds = lifetime(limit, &key);
            assert!((225..=300).contains(&seconds), "{seconds}");
            assert_eq!(seconds, lifetime(limit, &key), "the same credential, the same lifetime");
            *per_second.entry(seconds).or_default() += 1;
        }
        // Every second of the quarter gets some, none more than about twice
        // its fair share (10,000 over 75 seconds is 133).
        assert!(per_second.len() >= 75, "{} distinct lifetimes", per_second.len());
        assert!(per_second.values().all(|&n| n < 270), "{per_second:?}");
    }

    #[test]
    fn short_and_huge_limits_stay_within_bounds() {
        let key = digest("a.b.c");
        for seconds in [0u64, 1, 3, 4, 59, 3_600, u64::MAX / 2, u64::MAX] {
            let got = lifetime(std::time::Duration::from_secs(seconds), &key);
            assert!(got <= seconds && got >= seconds - seconds / 4, "{seconds}: {got}");
        }
        // Under four seconds there is nothing to spread.
        assert_eq!(lifetime(std::time::Duration::from_secs(3), &key), 3);
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
