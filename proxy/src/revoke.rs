//! Writing revocations: the request an operator makes (admin endpoint
//! `POST /revocations`, or `portcullis revoke`), turned into a denylist
//! entry with its expiry, and recorded in Redis (every replica) or, without
//! Redis, in this process only.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::RevocationSettings;
use serde::Deserialize;

use crate::auth::revocation::{digest_hex, Revocation};
use crate::auth::source::api_key::PREFIX;
use crate::auth::API_KEY_ISS;
use crate::idp::unix_now;
use crate::metrics::Metrics;
use crate::store::revocations::{RevocationBook, RevokeError};
use crate::store::RedisStore;

/// What to revoke: exactly one of `jti`, `token` or `sub`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// One token by its `jti` (an API key by its id).
    pub(crate) jti: Option<String>,
    /// One token, given whole; only its SHA-256 is kept.
    pub(crate) token: Option<String>,
    /// Every token of this subject issued before `before`.
    pub(crate) sub: Option<String>,
    /// Only for this issuer (its `iss`, or `api_key`); absent: any.
    pub(crate) iss: Option<String>,
    /// Unix time; default now.
    pub(crate) before: Option<u64>,
    /// For `jti`: when the token expires (default: now plus
    /// `revocation.max_token_lifetime`).
    pub(crate) expires: Option<u64>,
}

impl RevokeRequest {
    /// The entry and when it may be forgotten (every token it covers has
    /// expired by then).
    pub(crate) fn entry(&self, settings: &RevocationSettings, now: u64) -> Result<(Revocation, u64), String> {
        let longest = now + settings.max_token_lifetime.as_secs();
        let named = [self.jti.is_some(), self.token.is_some(), self.sub.is_some()].iter().filter(|n| **n).count();
        if named != 1 {
            return Err("name exactly one of jti, token or sub".to_owned());
        }
        if self.before.is_some() && self.sub.is_none() {
            return Err("before is only for sub".to_owned());
        }
        if self.expires.is_some() && self.jti.is_none() {
            return Err("expires is only for jti (a token's own exp is read from it)".to_owned());
        }
        let mut entry = Revocation { jti: None, token_sha256: None, sub: None, before: None, iss: self.iss.clone() };
        // An API key lives as long as its key file says: an entry for keys
        // is kept until the given expiry, else for good (remove the key
        // from its file to retire both).
        let for_keys = self.iss.as_deref() == Some(API_KEY_ISS);
        let expires = if let Some(jti) = &self.jti {
            entry.jti = Some(jti.clone());
            match (self.expires, for_keys) {
                (Some(expires), true) => expires,
                (None, true) => FOREVER,
                (expires, false) => expires.unwrap_or(longest).min(longest),
            }
        } else if let Some(token) = &self.token {
            let token = token.trim();
            if token.is_empty() {
                return Err("the token is empty".to_owned());
            }
            entry.token_sha256 = Some(digest_hex(&crate::auth::digest(token)));
            if token.starts_with(PREFIX) {
                FOREVER
            } else {
                token_exp(token).filter(|exp| *exp > now).unwrap_or(longest).min(longest)
            }
        } else {
            let before = self.before.unwrap_or(now);
            entry.sub = self.sub.clone();
            entry.before = Some(before);
            if for_keys {
                FOREVER
            } else {
                before.saturating_add(settings.max_token_lifetime.as_secs())
            }
        };
        if expires <= now {
            return Err("every token this covers has expired already".to_owned());
        }
        Ok((entry, expires))
    }
}

/// The expiry of entries that cover API keys without an expiry of their own.
const FOREVER: u64 = u64::MAX;

/// The `iss` a revocation names: a configured token issuer by its name or
/// its `iss`, or API keys (`api_key`, or one of `api_keys.issuers`).
/// Anything else would match nothing and is refused.
pub(crate) fn resolve_issuer(config: &config::Config, given: &str) -> Result<String, String> {
    if let Some(issuer) = config.issuers.iter().find(|issuer| issuer.name == given || issuer.issuer == given) {
        return Ok(issuer.issuer.clone());
    }
    let key_issuer = config.api_keys.as_ref().is_some_and(|keys| keys.issuers.iter().any(|name| name == given));
    if given == API_KEY_ISS || key_issuer {
        return Ok(API_KEY_ISS.to_owned());
    }
    let mut known: Vec<&str> = config.issuers.iter().map(|issuer| issuer.name.as_str()).collect();
    known.push(API_KEY_ISS);
    Err(format!("'{given}' is no configured issuer (by name or iss: {})", known.join(", ")))
}

/// A JWT's `exp`, read without verification (it only bounds how long the
/// entry is kept; a forged `exp` is capped by `max_token_lifetime`).
fn token_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

/// Where a revocation went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Redis, so every replica.
    Shared,
    /// Here, and Redis did not answer: it is written back to Redis at the
    /// next successful read (within `RESYNC_EVERY`, or on reconnect).
    Pending,
    /// This process only (no `redis:`).
    Local,
}

/// Record `entry` here at once, then in Redis when there is one.
pub(crate) async fn record(
    redis: Option<&RedisStore>,
    book: &RevocationBook,
    entry: Revocation,
    expires: u64,
) -> Result<Recorded, RevokeError> {
    book.add(entry.clone(), expires)?;
    let Some(store) = redis else { return Ok(Recorded::Local) };
    match store.revoke(&entry, expires).await {
        Ok(()) => Ok(Recorded::Shared),
        Err(error) => {
            tracing::warn!(%error, "a revocation is in force here, and goes to Redis once it answers");
            Ok(Recorded::Pending)
        }
    }
}

/// `portcullis revoke`: write one revocation to the configured Redis and
/// say what was done.
pub fn revoke_command(path: &std::path::Path, request: CliRevocation<'_>) -> anyhow::Result<String> {
    let loaded = config::load(path, config::Mode::Serve).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = loaded.config;
    let Some(settings) = config.redis.clone() else {
        anyhow::bail!(
            "{}: no 'redis' section: revocations without Redis live in one process; use POST /revocations on its \
             admin listener",
            path.display()
        );
    };
    let iss = match request.issuer {
        None => None,
        Some(name) => {
            Some(resolve_issuer(&config, name).map_err(|why| anyhow::anyhow!("--issuer: {why} ({})", path.display()))?)
        }
    };
    let token = match request.token_file {
        Some(file) => Some(std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?),
        None => None,
    };
    let time = |text: Option<&str>, what: &str| -> anyhow::Result<Option<u64>> {
        text.map(|t| {
            config::parse_time(t).with_context(|| format!("{what}: expected 2026-12-31 or 2026-12-31T10:00:00Z"))
        })
        .transpose()
    };
    let revoke = RevokeRequest {
        jti: request.jti.map(str::to_owned),
        token,
        sub: request.subject.map(str::to_owned),
        iss,
        before: time(request.before, "--before")?,
        expires: time(request.expires, "--expires")?,
    };
    let (entry, expires) = revoke.entry(&config.revocation, unix_now()).map_err(|e| anyhow::anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let connect_timeout = settings.connect_timeout;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let store = RedisStore::start(settings, tokio::runtime::Handle::current(), metrics);
        let deadline = tokio::time::Instant::now() + connect_timeout * 3;
        while !store.connected() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.revoke(&entry, expires).await.context("writing the revocation to Redis")?;
        Ok(format!("revoked {} until {expires} (Unix time), in Redis: every replica applies it\n", entry.to_json()))
    })
}

/// `portcullis revoke`'s arguments.
pub struct CliRevocation<'a> {
    pub jti: Option<&'a str>,
    pub token_file: Option<&'a std::path::Path>,
    pub subject: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub before: Option<&'a str>,
    pub expires: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RevocationSettings {
        RevocationSettings { max_token_lifetime: Duration::from_secs(3600), max_entries: 10 }
    }

    #[test]
    fn each_kind_of_request_becomes_an_entry_that_outlives_what_it_covers() {
        let now = 1_000_000;
        let jti = RevokeRequest { jti: Some("j".into()), ..Default::default() };
        assert_eq!(jti.entry(&settings(), now).unwrap().1, now + 3600);
        let sub = RevokeRequest { sub: Some("alice".into()), before: Some(now - 10), ..Default::default() };
        let (entry, expires) = sub.entry(&settings(), now).unwrap();
        assert_eq!((entry.before, expires), (Some(now - 10), now - 10 + 3600));
        // A token's own exp, capped by the longest lifetime.
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{}}}", now + 60));
        let token = RevokeRequest { token: Some(format!("e30.{payload}.sig")), ..Default::default() };
        let (entry, expires) = token.entry(&settings(), now).unwrap();
        assert_eq!(expires, now + 60);
        assert_eq!(entry.token_sha256.as_deref().map(str::len), Some(64));
        let far = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{}}}", now + 999_999));
        let token = RevokeRequest { token: Some(format!("e30.{far}.sig")), ..Default::default() };
        assert_eq!(token.entry(&settings(), now).unwrap().1, now + 3600);
    }

    #[test]
    fn entries_for_api_keys_are_kept_for_good() {
        let now = 1_000_000;
        let by_id = RevokeRequest { jti: Some("ci".into()), iss: Some("api_key".into()), ..Default::default() };
        assert_eq!(by_id.entry(&settings(), now).unwrap().1, FOREVER);
        let dated = RevokeRequest { expires: Some(now + 10), ..by_id };
        assert_eq!(dated.entry(&settings(), now).unwrap().1, now + 10);
        let whole = RevokeRequest { token: Some("pk_ci_c2VjcmV0".into()), ..Default::default() };
        assert_eq!(whole.entry(&settings(), now).unwrap().1, FOREVER);
        let subject = RevokeRequest { sub: Some("bot".into()), iss: Some("api_key".into()), ..Default::default() };
        assert_eq!(subject.entry(&settings(), now).unwrap().1, FOREVER);
    }

    #[test]
    fn ambiguous_or_pointless_requests_are_refused() {
        let now = 1_000_000;
        let both = RevokeRequest { jti: Some("j".into()), sub: Some("s".into()), ..Default::default() };
        assert!(both.entry(&settings(), now).is_err());
        assert!(RevokeRequest::default().entry(&settings(), now).is_err());
        let before = RevokeRequest { jti: Some("j".into()), before: Some(1), ..Default::default() };
        assert!(before.entry(&settings(), now).is_err());
        let old = RevokeRequest { sub: Some("s".into()), before: Some(now - 7200), ..Default::default() };
        assert!(old.entry(&settings(), now).is_err());
    }
}
