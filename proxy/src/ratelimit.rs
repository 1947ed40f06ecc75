//! Rate limits on the paths attackers grind: GCRA from `governor`, keyed,
//! with DashMap-backed state and a hard cap on tracked keys.
//!
//! Keys are attacker-chosen (addresses, usernames, header values), so they
//! are hashed with a per-process random SipHash key into a `u64` (no
//! per-key allocation, no engineered collisions), IPv6 clients are keyed by
//! their /64 (configurable) because one host owns billions of addresses, idle
//! keys are pruned periodically, and once `max_keys` keys are tracked every
//! new key shares one overflow bucket: an attacker spraying keys is limited
//! as one client, and memory stays bounded.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use config::RateLimit;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use prometheus::IntCounter;

/// Shards of a limiter's key map (a power of two).
const LIMIT_SHARDS: usize = 256;

/// The state store: a DashMap of GCRA states plus one shared overflow state.
pub(crate) struct CappedStore {
    map: DashMap<u64, InMemoryState>,
    overflow: InMemoryState,
    max_keys: usize,
    /// Approximate number of keys (exact after each prune); avoids locking
    /// every shard to count on the hot path.
    approx_len: AtomicUsize,
    /// Requests sent to the overflow bucket; the metric itself, because
    /// governor gives no access to its store from outside.
    overflowed: IntCounter,
}

impl CappedStore {
    fn new(max_keys: usize, overflowed: IntCounter) -> CappedStore {
        CappedStore {
            // More shards than DashMap's default (4 per core): distinct
            // clients on different cores rarely share a shard's lock.
            map: DashMap::with_shard_amount(LIMIT_SHARDS),
            overflow: InMemoryState::default(),
            max_keys,
            approx_len: AtomicUsize::new(0),
            overflowed,
        }
    }
}

impl StateStore for CappedStore {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !self.map.contains_key(key) {
            if self.approx_len.load(Ordering::Relaxed) >= self.max_keys {
                self.overflowed.inc();
                return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
            }
            self.approx_len.fetch_add(1, Ordering::Relaxed);
        }
        self.map.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<u64> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain_recent(drop_below);
        self.approx_len.store(self.map.len(), Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

type Keyed = RateLimiter<u64, CappedStore, DefaultClock, NoOpMiddleware<<DefaultClock as Clock>::Instant>>;

/// The counters of one limit.
pub struct LimitCounters {
    /// `portcullis_rate_limit_rejections_total{limit}`.
    pub rejected: IntCounter,
    /// `portcullis_rate_limit_overflow_total{limit}`: requests keyed to the
    /// shared overflow bucket.
    pub overflowed: IntCounter,
}

impl LimitCounters {
    /// Counters registered nowhere (tools, tests).
    pub fn unregistered() -> LimitCounters {
        let counter = |name: &str| IntCounter::new(name, name).unwrap_or_else(|_| unreachable!("valid metric name"));
        LimitCounters { rejected: counter("rejected"), overflowed: counter("overflowed") }
    }
}

/// One named limit.
pub struct Limiter {
    pub config: RateLimit,
    limiter: Keyed,
    clock: DefaultClock,
    hasher: RandomState,
    overflowed: IntCounter,
    /// Counts this limit's 429s.
    pub rejected: IntCounter,
    /// `RateLimit-Policy` header value, built once.
    policy_header: String,
}

/// A refused request: when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Whole seconds, at least 1 (RFC 9110 `Retry-After`).
    pub retry_after: u64,
}

/// What identifies the client for one limit.
#[derive(Debug, Clone, Copy)]
pub enum KeyValue<'a> {
    Ip(IpAddr),
    Text(&'a str),
}

impl KeyValue<'_> {
    /// The client address as a key (the stand-in when a limit's own key is
    /// missing; an unknown address is one shared key).
    pub fn client(address: Option<IpAddr>) -> KeyValue<'static> {
        address.map_or(KeyValue::Text(""), KeyValue::Ip)
    }
}

impl Limiter {
    pub fn new(config: RateLimit, counters: LimitCounters) -> Limiter {
        let LimitCounters { rejected, overflowed } = counters;
        // GCRA: one request every `per / limit`, up to `burst` at once.
        let period = (config.per / config.limit.max(1)).max(Duration::from_nanos(1));
        let burst = std::num::NonZeroU32::new(config.burst).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = Quota::with_period(period).map_or(Quota::per_second(burst), |q| q.allow_burst(burst));
        let clock = DefaultClock::default();
        let store = CappedStore::new(config.max_keys, overflowed.clone());
        let limiter = RateLimiter::new(quota, store, clock.clone());
        let policy_header = format!("\"{}\";q={};w={}", config.name, config.limit, config.per.as_secs().max(1));
        Limiter { limiter, clock, hasher: RandomState::new(), overflowed, rejected, policy_header, config }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn policy_header(&self) -> &str {
        &self.policy_header
    }

    /// Count one request for this key.
    pub fn check(&self, key: KeyValue<'_>) -> Result<(), Refusal> {
        let hashed = self.hash(key);
        self.limiter.check_key(&hashed).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Refusal { retry_after: ceil_secs(wait).max(1) }
        })
    }

    /// The key as this limiter hashes it (per-process SipHash key).
    pub(crate) fn key_hash(&self, key: KeyValue<'_>) -> u64 {
        self.hash(key)
    }

    fn hash(&self, key: KeyValue<'_>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        match key {
            KeyValue::Ip(IpAddr::V4(v4)) => (4u8, v4.octets()).hash(&mut hasher),
            KeyValue::Ip(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => (4u8, v4.octets()).hash(&mut hasher),
                None => (6u8, mask_v6(u128::from(v6), self.config.ipv6_prefix)).hash(&mut hasher),
            },
            KeyValue::Text(text) => (0u8, text).hash(&mut hasher),
        }
        hasher.finish()
    }

    /// The key as bytes for a shared store, masked and tagged exactly as
    /// [`Self::check`] keys it (the store hashes it again with its own key).
    pub(crate) fn canonical_key(&self, key: KeyValue<'_>) -> Vec<u8> {
        match key {
            KeyValue::Ip(IpAddr::V4(v4)) => [&[4u8][..], &v4.octets()].concat(),
            KeyValue::Ip(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => [&[4u8][..], &v4.octets()].concat(),
                None => [&[6u8][..], &mask_v6(u128::from(v6), self.config.ipv6_prefix).to_be_bytes()].concat(),
            },
            KeyValue::Text(text) => [&[0u8][..], text.as_bytes()].concat(),
        }
    }

    /// Drop keys whose bucket is full again (idle clients) and give the
    /// memory back. Run periodically.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }

    /// Requests that went to the overflow bucket since start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.get()
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn mask_v6(addr: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => addr,
        p => addr & (u128::MAX << (128 - u32::from(p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::RateKey;

    fn limiter(limit: u32, per: Duration, burst: u32, max_keys: usize) -> Limiter {
        Limiter::new(
            RateLimit {
                name: "auth".into(),
                key: RateKey::ClientIp,
                limit,
                per,
                burst,
                max_keys,
                ipv6_prefix: 64,
                store: config::LimitStore::Local,
            },
            LimitCounters::unregistered(),
        )
    }

    fn ip(text: &str) -> KeyValue<'static> {
        KeyValue::Ip(text.parse().unwrap())
    }

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let l = limiter(5, Duration::from_secs(60), 5, 100);
        for _ in 0..5 {
            assert_eq!(l.check(ip("192.0.2.1")), Ok(()));
        }
        let refusal = l.check(ip("192.0.2.1")).unwrap_err();
        assert!((1..=12).contains(&refusal.retry_after), "{refusal:?}");
        // Another client is unaffected.
        assert_eq!(l.check(ip("192.0.2.2")), Ok(()));
        assert_eq!(l.policy_header(), "\"auth\";q=5;w=60");
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let l = limiter(2, Duration::from_secs(60), 2, 100);
        assert_eq!(l.check(ip("2001:db8::1")), Ok(()));
        assert_eq!(l.check(ip("2001:db8::2:3")), Ok(()));
        assert!(l.check(ip("2001:db8::ffff")).is_err());
        assert_eq!(l.check(ip("2001:db8:0:1::1")), Ok(()));
        // IPv4-mapped addresses count as the IPv4 address.
        assert_eq!(l.check(ip("198.51.100.7")), Ok(()));
        assert_eq!(l.check(ip("::ffff:198.51.100.7")), Ok(()));
        assert!(l.check(ip("198.51.100.7")).is_err());
    }

    #[test]
    fn keys_beyond_the_cap_share_one_overflow_bucket() {
        let l = limiter(1, Duration::from_secs(3600), 3, 10);
        for n in 0..10 {
            assert_eq!(l.check(KeyValue::Text(&format!("user{n}"))), Ok(()));
        }
        assert_eq!(l.tracked_keys(), 10);
        let outcomes: Vec<bool> = (10..20).map(|n| l.check(KeyValue::Text(&format!("user{n}"))).is_ok()).collect();
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 3, "{outcomes:?}");
        assert_eq!(l.tracked_keys(), 10);
        assert_eq!(l.overflowed(), 10);
        // Keys already tracked keep their own bucket.
        assert_eq!(l.check(KeyValue::Text("user0")), Ok(()));
    }

    #[test]
    fn pruning_forgets_idle_keys() {
        let l = limiter(1000, Duration::from_millis(1), 1, 1000);
        for n in 0..100 {
            let _ = l.check(KeyValue::Text(&format!("k{n}")));
        }
        std::thread::sleep(Duration::from_millis(20));
        l.prune();
        assert_eq!(l.tracked_keys(), 0);
    }

    #[test]
    fn v6_masking() {
        assert_eq!(mask_v6(u128::MAX, 64), u128::MAX << 64);
        assert_eq!(mask_v6(u128::MAX, 128), u128::MAX);
        assert_eq!(mask_v6(u128::MAX, 0), 0);
    }
}
