//! Limits: named rate limits, the bounds on tokens, and the verified-token
//! cache. Every bound has a ceiling, so no setting can ask the proxy for
//! unbounded memory.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::values::{bounded, duration, is_name, is_token_byte, positive_duration};
use crate::diag::Reporter;
use crate::file::{OrderedMap, RateLimitFile, Text, TokenCacheFile, TokensFile};
use crate::model::{LimitStore, RateKey, RateLimit, StoreErrorPolicy, TokenCacheSettings, TokenSettings};

const DEFAULT_MAX_TOKEN_BYTES: u64 = 8 * 1024;
const MAX_MAX_TOKEN_BYTES: u64 = 64 * 1024;
const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 100_000;
const DEFAULT_RATE_LIMIT_KEYS: u64 = 100_000;

pub(super) fn rate_limits(
    file: Option<OrderedMap<RateLimitFile>>,
    redis_configured: bool,
    r: &mut Reporter<'_>,
) -> Vec<RateLimit> {
    let mut out = Vec::new();
    for (name, limit) in file.map(|m| m.0).unwrap_or_default() {
        if !is_name(&name.value) {
            r.error(&name, "rate limit name must be letters, digits, '-' or '_'");
        }
        if let Some(built) = rate_limit(name.value, &limit, redis_configured, r) {
            out.push(built);
        }
    }
    out
}

/// One rate limit; `None` when a part of it that has no safe default is invalid.
fn rate_limit(name: String, limit: &RateLimitFile, redis_configured: bool, r: &mut Reporter<'_>) -> Option<RateLimit> {
    let key = rate_key(&limit.key, r);
    let count = match limit.limit.value {
        0 => {
            r.error(&limit.limit, "limit must be at least 1");
            None
        }
        n => u32::try_from(n).ok().or_else(|| {
            r.error(&limit.limit, "limit is too large");
            None
        }),
    };
    let per = positive_duration(&limit.per, r);
    let burst = match &limit.burst {
        Some(b) if b.value == 0 || b.value > u64::from(u32::MAX) => {
            r.error(b, "burst must be at least 1");
            None
        }
        Some(b) => Some(b.value as u32),
        None => count,
    };
    let max_keys = bounded(limit.max_keys.as_ref(), DEFAULT_RATE_LIMIT_KEYS, 1, 100_000_000, "max_keys", r);
    let ipv6_prefix = match &limit.ipv6_prefix {
        Some(p) if p.value == 0 || p.value > 128 => {
            r.error(p, "ipv6_prefix must be between 1 and 128");
            64
        }
        Some(p) => p.value,
        None => 64,
    };
    let store = store(limit, redis_configured, r);
    Some(RateLimit { name, key: key?, limit: count?, per: per?, burst: burst?, max_keys, ipv6_prefix, store: store? })
}

/// `store` and `on_store_error`.
fn store(limit: &RateLimitFile, redis_configured: bool, r: &mut Reporter<'_>) -> Option<LimitStore> {
    let on_error = match &limit.on_store_error {
        None => Some(StoreErrorPolicy::Local),
        Some(text) => match text.value.as_str() {
            "local" => Some(StoreErrorPolicy::Local),
            "allow" => Some(StoreErrorPolicy::Allow),
            "deny" => Some(StoreErrorPolicy::Deny),
            other => {
                r.error(text, format!("'{other}' is not one of: local, allow, deny"));
                None
            }
        },
    };
    match limit.store.as_ref().map(|s| (s, s.value.as_str())) {
        None | Some((_, "local")) => {
            if let Some(text) = &limit.on_store_error {
                r.error(text, "on_store_error is only for store: redis");
            }
            Some(LimitStore::Local)
        }
        Some((text, "redis")) => {
            if !redis_configured {
                r.error(text, "store: redis needs a 'redis:' section");
                return None;
            }
            on_error.map(|on_error| LimitStore::Redis { on_error })
        }
        Some((text, other)) => {
            r.error(text, format!("'{other}' is not one of: local, redis"));
            None
        }
    }
}

fn rate_key(text: &Text, r: &mut Reporter<'_>) -> Option<RateKey> {
    let value = text.value.as_str();
    let key = match value.split_once(':') {
        None if value == "client_ip" => RateKey::ClientIp,
        None if value == "subject" => RateKey::Subject,
        Some(("header", name)) if !name.is_empty() && name.bytes().all(is_token_byte) => {
            RateKey::Header(name.to_ascii_lowercase())
        }
        Some(("form", field)) if !field.is_empty() => RateKey::FormField(field.to_owned()),
        _ => {
            r.error(
                text,
                format!("unknown rate-limit key '{value}'; use client_ip, subject, header:NAME or form:FIELD"),
            );
            return None;
        }
    };
    Some(key)
}

pub(super) fn tokens(file: &Option<Spanned<TokensFile>>, r: &mut Reporter<'_>) -> TokenSettings {
    let file = file.as_ref().map(|f| &f.value);
    let max_bytes = bounded(
        file.and_then(|f| f.max_bytes.as_ref()),
        DEFAULT_MAX_TOKEN_BYTES,
        64,
        MAX_MAX_TOKEN_BYTES,
        "max_bytes",
        r,
    );
    let query_parameter = file.and_then(|f| f.query_parameter.as_ref()).and_then(|text| {
        if text.value.is_empty() || !text.value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            r.error(text, "query_parameter must be a plain parameter name such as access_token");
            None
        } else {
            Some(text.value.clone())
        }
    });
    let failed_auth_budget = file.and_then(|f| f.failed_auth_budget.as_ref()).and_then(|budget| {
        // The same checks as a named limit keyed by client address.
        let b = &budget.value;
        let as_limit = RateLimitFile {
            key: Spanned { value: "client_ip".to_owned(), referenced: budget.referenced, defined: budget.defined },
            limit: b.limit.clone(),
            per: b.per.clone(),
            burst: b.burst.clone(),
            max_keys: b.max_keys.clone(),
            ipv6_prefix: b.ipv6_prefix.clone(),
            store: None,
            on_store_error: None,
        };
        rate_limit("failed_auth".to_owned(), &as_limit, false, r)
    });
    TokenSettings { max_bytes, query_parameter, failed_auth_budget }
}

pub(super) fn token_cache(file: &Option<Spanned<TokenCacheFile>>, r: &mut Reporter<'_>) -> TokenCacheSettings {
    let file = file.as_ref().map(|f| &f.value);
    TokenCacheSettings {
        max_entries: bounded(
            file.and_then(|f| f.max_entries.as_ref()),
            DEFAULT_TOKEN_CACHE_ENTRIES,
            0,
            100_000_000,
            "max_entries",
            r,
        ),
        ttl: file.and_then(|f| f.ttl.as_ref()).and_then(|t| duration(t, r)).unwrap_or(Duration::from_secs(300)),
    }
}
