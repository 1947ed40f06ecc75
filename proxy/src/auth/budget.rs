//! The failed-authentication budget (`tokens.failed_auth_budget`): once a
//! client address has sent more invalid bearer tokens than its budget
//! allows, its requests that would need a verification are answered 429
//! before any cryptography. Valid tokens in the verified-token cache are
//! never affected (the cache is asked first), and the key is the client
//! address as `client_ip` limits key it (`X-Forwarded-For` from trusted
//! proxies only, IPv6 by /64), so a proxy in front does not make every
//! client behind it share one budget.
//!
//! The count is the GCRA limiter every rate limit uses (bounded keys); the
//! addresses currently over budget are a bounded set of their own, so the
//! gate is one lookup and never spends budget.

use std::net::IpAddr;

use config::RateLimit;
use prometheus::IntCounter;

use crate::idp::unix_now;
use crate::metrics::Striped;
use crate::ratelimit::{KeyValue, LimitCounters, Limiter};

/// Addresses held as over budget at once (more evict the oldest; each
/// evicted one is simply counted again).
const BLOCKED_CAPACITY: usize = 16_384;

pub(crate) struct FailedAuthBudget {
    failures: Limiter,
    /// Address hash → Unix time until which verifications are refused.
    blocked: quick_cache::sync::Cache<u64, u64>,
    refused: Striped<IntCounter>,
}

impl FailedAuthBudget {
    pub(crate) fn new(limit: RateLimit, refused: Striped<IntCounter>) -> FailedAuthBudget {
        FailedAuthBudget {
            failures: Limiter::new(limit, LimitCounters::unregistered()),
            blocked: super::cache::sharded(BLOCKED_CAPACITY),
            refused,
        }
    }

    /// Seconds until `client` may have a token verified again; `None`
    /// when it is within its budget.
    pub(crate) fn blocked(&self, client: Option<IpAddr>) -> Option<u64> {
        let key = self.failures.key_hash(KeyValue::client(client));
        let until = self.blocked.get(&key)?;
        let now = unix_now();
        if until <= now {
            self.blocked.remove(&key);
            return None;
        }
        self.refused.local().inc();
        Some(until - now)
    }

    /// Count one invalid token from `client`.
    pub(crate) fn failed(&self, client: Option<IpAddr>) {
        let key = KeyValue::client(client);
        if let Err(refusal) = self.failures.check(key) {
            self.blocked.insert(self.failures.key_hash(key), unix_now() + refusal.retry_after);
        }
    }

    /// Drop idle counters (housekeeping).
    pub(crate) fn prune(&self) {
        self.failures.prune();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn budget(limit: u32) -> FailedAuthBudget {
        let config = RateLimit {
            name: "failed_auth".into(),
            key: config::RateKey::ClientIp,
            limit,
            per: Duration::from_secs(60),
            burst: limit,
            max_keys: 1000,
            ipv6_prefix: 64,
            store: config::LimitStore::Local,
        };
        FailedAuthBudget::new(config, Striped::new(|| IntCounter::new("x", "x").unwrap()))
    }

    #[test]
    fn a_client_is_blocked_once_over_budget_and_others_are_not() {
        let budget = budget(3);
        let (mallory, alice) = (Some("192.0.2.1".parse().unwrap()), Some("192.0.2.2".parse().unwrap()));
        for _ in 0..3 {
            assert_eq!(budget.blocked(mallory), None);
            budget.failed(mallory);
        }
        assert_eq!(budget.blocked(mallory), None, "three failures are within a budget of three");
        budget.failed(mallory);
        let wait = budget.blocked(mallory).expect("over budget");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(budget.blocked(alice), None);
        // The same /64 is the same client.
        let (v6a, v6b) = (Some("2001:db8::1".parse().unwrap()), Some("2001:db8::2".parse().unwrap()));
        for _ in 0..4 {
            budget.failed(v6a);
        }
        assert!(budget.blocked(v6b).is_some());
    }
}
