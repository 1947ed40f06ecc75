//! Resident memory under attacker-chosen keys: 1,000,000 distinct rate-limit
//! keys and 1,000,000 distinct verified tokens, with the default caps and
//! with caps large enough to hold them all.
//!
//! Run: `cargo run --release -p portcullis --example memory`

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use config::{RateKey, RateLimit};
use http::HeaderValue;
use policy::{ClaimValues, IssuerId, ScopeSet};
use portcullis::{digest, Identity, KeyValue, LimitCounters, Limiter, TokenCache};

const KEYS: u32 = 1_000_000;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn limiter(max_keys: usize) -> Limiter {
    Limiter::new(
        RateLimit {
            name: "login".into(),
            key: RateKey::ClientIp,
            limit: 5,
            per: Duration::from_secs(60),
            burst: 5,
            max_keys,
            ipv6_prefix: 64,
            store: config::LimitStore::Local,
        },
        LimitCounters::unregistered(),
    )
}

fn identity(n: u32) -> Arc<Identity> {
    Arc::new(Identity {
        issuer: IssuerId(0),
        issuer_uid: 1,
        key_id: Some(42),
        subject: Some(format!("user-{n:08}").into()),
        jti: Some(format!("{n:016x}").into()),
        issued_at: Some(1_764_000_000),
        scopes: ScopeSet::new(["openid", "profile", "tasks:read", "tasks:write"]),
        headers: Box::new([
            (0, HeaderValue::from_str(&format!("user-{n:08}")).unwrap_or(HeaderValue::from_static("x"))),
            (1, HeaderValue::from_static("openid profile tasks:read tasks:write")),
        ]),
        valid_until: u64::MAX,
        claims: ClaimValues::default(),
        binding: portcullis::CertificateBinding::Unbound,
    })
}

fn main() {
    let base = rss_mib();
    println!("baseline RSS: {base:.1} MiB");

    for max_keys in [100_000usize, 1_000_000] {
        let before = rss_mib();
        let limit = limiter(max_keys);
        for n in 0..KEYS {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limit.check(KeyValue::Ip(ip));
        }
        let after = rss_mib();
        println!(
            "rate limit, max_keys {max_keys}: {} keys tracked, {} overflowed, RSS +{:.1} MiB",
            limit.tracked_keys(),
            limit.overflowed(),
            after - before
        );
        drop(limit);
    }

    for capacity in [100_000usize, 1_000_000] {
        let before = rss_mib();
        let cache = TokenCache::new(capacity);
        for n in 0..KEYS {
            cache.insert(digest(&format!("eyJhbGciOiJSUzI1NiJ9.token-{n}.signature")), identity(n));
        }
        let after = rss_mib();
        println!("token cache, max_entries {capacity}: {} entries, RSS +{:.1} MiB", cache.len(), after - before);
        drop(cache);
    }
}
