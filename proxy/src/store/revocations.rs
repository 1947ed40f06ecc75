//! Revocations: the process's book of entries (what the in-memory denylist
//! is built from), writing one (admin endpoint, CLI), and following Redis
//! so every replica holds every entry.
//!
//! The Redis contract (README "Running several replicas"): a sorted set
//! `<prefix>revocations` whose members are entries as JSON
//! ([`Revocation::to_json`]) scored by their expiry (Unix seconds), and a
//! message with the member on the channel of the same name. A replica
//! subscribes first, then reads the whole set (so nothing written in
//! between is missed), then applies each message; it reads the whole set
//! again every [`RESYNC_EVERY`] and after every reconnect. Entries end only
//! by expiring: one that Redis lost is kept, and written back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::RevocationSettings;
use futures_util::StreamExt;

use super::{RedisStore, StoreError};
use crate::auth::revocation::{Denylist, Revocation};
use crate::auth::Revocations;
use crate::idp::unix_now;
use crate::metrics::Metrics;

/// Full re-read of the set, a safety net behind the subscription.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// Reading the whole set may take longer than a request's command.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Why a revocation was not recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RevokeError {
    #[error("the denylist holds revocation.max_entries ({0}) entries already")]
    Full(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The entries in force and their expiry; the denylist is rebuilt from it
/// on every change (a rare event) so lookups never lock.
pub(crate) struct RevocationBook {
    entries: Mutex<HashMap<Revocation, u64>>,
    /// Redis's set has been read once: until then a replica may not know a
    /// revocation, and is not ready.
    synced: std::sync::atomic::AtomicBool,
    revocations: Arc<Revocations>,
    settings: RevocationSettings,
    metrics: Arc<Metrics>,
}

impl RevocationBook {
    pub(crate) fn new(revocations: Arc<Revocations>, settings: RevocationSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let synced = std::sync::atomic::AtomicBool::new(false);
        Arc::new(RevocationBook { entries: Mutex::new(HashMap::new()), synced, revocations, settings, metrics })
    }

    pub(crate) fn settings(&self) -> &RevocationSettings {
        &self.settings
    }

    /// Whether Redis's revocations have been read at least once.
    pub(crate) fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Add one entry here (not in Redis); refused when the book is full.
    pub(crate) fn add(&self, entry: Revocation, expires: u64) -> Result<(), RevokeError> {
        let mut entries = self.lock();
        let now = unix_now();
        entries.retain(|_, until| *until > now);
        if entries.len() >= self.settings.max_entries && !entries.contains_key(&entry) {
            return Err(RevokeError::Full(self.settings.max_entries));
        }
        let until = entries.entry(entry).or_insert(expires);
        *until = (*until).max(expires);
        self.publish(&entries, now);
        Ok(())
    }

    /// Merge a full read of Redis into the book; return the unexpired
    /// entries held here that Redis lacks. Revocations only ever end by
    /// expiring, so an entry Redis lost (restarted empty, failed over to a
    /// replica that had not seen it) is kept here, never dropped.
    fn merge(&self, fresh: HashMap<Revocation, u64>) -> Vec<(Revocation, u64)> {
        let mut entries = self.lock();
        let now = unix_now();
        let missing: Vec<(Revocation, u64)> = entries
            .iter()
            .filter(|(entry, until)| **until > now && !fresh.contains_key(*entry))
            .map(|(entry, until)| (entry.clone(), *until))
            .collect();
        for (entry, until) in fresh {
            let kept = entries.entry(entry).or_insert(until);
            *kept = (*kept).max(until);
        }
        entries.retain(|_, until| *until > now);
        if entries.len() > self.settings.max_entries {
            tracing::error!(
                held = entries.len(),
                max_entries = self.settings.max_entries,
                "more revocations than revocation.max_entries are in force; all are kept"
            );
        }
        self.publish(&entries, now);
        missing
    }

    fn publish(&self, entries: &HashMap<Revocation, u64>, now: u64) {
        let list = Denylist::new(entries.iter().map(|(entry, until)| (entry, *until)), now);
        self.metrics.revocations.set(list.len() as i64);
        self.revocations.replace(list);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Revocation, u64>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drop expired entries (periodically, without Redis).
    pub(crate) fn prune(&self) {
        let mut entries = self.lock();
        let now = unix_now();
        let before = entries.len();
        entries.retain(|_, until| *until > now);
        if entries.len() != before {
            self.publish(&entries, now);
        }
    }
}

impl RedisStore {
    /// Record a revocation in Redis and tell every replica.
    pub(crate) async fn revoke(&self, entry: &Revocation, expires: u64) -> Result<(), StoreError> {
        let (set, member) = (self.key("revocations"), entry.to_json());
        let now = unix_now();
        self.run_within("revoke", SYNC_TIMEOUT, move |mut connection| async move {
            // GT: writing an entry again never shortens it (Redis 6.2+).
            redis::cmd("ZADD").arg(&set).arg("GT").arg(expires).arg(&member).query_async::<()>(&mut connection).await?;
            redis::cmd("ZREMRANGEBYSCORE").arg(&set).arg("-inf").arg(now).query_async::<()>(&mut connection).await?;
            redis::cmd("PUBLISH").arg(&set).arg(&member).query_async::<()>(&mut connection).await
        })
        .await
    }

    /// Every entry in Redis that has not expired, with its expiry.
    async fn read_revocations(&self) -> Result<HashMap<Revocation, u64>, StoreError> {
        let set = self.key("revocations");
        let now = unix_now();
        let members: Vec<(String, f64)> = self
            .run_within("revocations_sync", SYNC_TIMEOUT, move |mut connection| async move {
                redis::cmd("ZRANGE")
                    .arg(&set)
                    .arg(now + 1)
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("WITHSCORES")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let mut entries = HashMap::with_capacity(members.len());
        for (member, score) in members {
            match Revocation::parse(&member) {
                Ok(entry) => {
                    entries.insert(entry, score as u64);
                }
                Err(error) => tracing::warn!(%error, "skipping a revocation entry Redis holds"),
            }
        }
        Ok(entries)
    }

    /// The expiry of one member (after a message names it).
    async fn revocation_expiry(&self, member: String) -> Result<Option<u64>, StoreError> {
        let set = self.key("revocations");
        let score: Option<f64> = self
            .run_within("revocations_sync", SYNC_TIMEOUT, move |mut connection| async move {
                redis::cmd("ZSCORE").arg(&set).arg(&member).query_async(&mut connection).await
            })
            .await?;
        Ok(score.map(|s| s as u64))
    }
}

/// Keep `book` equal to Redis's set: subscribe, read it all, apply every
/// message; on any failure start over (after a short, growing pause).
pub(crate) async fn follow(store: Arc<RedisStore>, book: Arc<RevocationBook>) {
    let mut delay = RETRY_MIN;
    loop {
        let ended = follow_once(&store, &book).await;
        store.set_following(false);
        match ended {
            Ok(()) => delay = RETRY_MIN,
            Err(error) => tracing::debug!(%error, "revocation subscription ended; reconnecting"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

async fn follow_once(store: &RedisStore, book: &RevocationBook) -> Result<(), String> {
    let mut pubsub = subscriber(store).await?;
    pubsub.subscribe(store.key("revocations")).await.map_err(|e| e.to_string())?;
    resync(store, book).await?;
    store.set_following(true);
    let mut messages = pubsub.into_on_message();
    let mut resync_timer = tokio::time::interval(RESYNC_EVERY);
    resync_timer.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Ok(()) };
                let member = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                match Revocation::parse(&member) {
                    Ok(entry) => match store.revocation_expiry(member).await {
                        Ok(Some(expires)) => {
                            if let Err(error) = book.add(entry, expires) {
                                tracing::error!(%error, "a revocation from Redis was not applied");
                            }
                        }
                        Ok(None) => {}
                        Err(_) => resync(store, book).await?,
                    },
                    Err(error) => tracing::warn!(%error, "ignoring a malformed revocation message"),
                }
            }
            _ = resync_timer.tick() => resync(store, book).await?,
        }
    }
}

/// Read the whole set into the book, and write back what Redis lost.
async fn resync(store: &RedisStore, book: &RevocationBook) -> Result<(), String> {
    let entries = store.read_revocations().await.map_err(|e| e.to_string())?;
    let missing = book.merge(entries);
    book.synced.store(true, std::sync::atomic::Ordering::Release);
    if !missing.is_empty() {
        tracing::warn!(count = missing.len(), "Redis lacks revocations this replica holds; writing them back");
        for (entry, expires) in &missing {
            store.revoke(entry, *expires).await.map_err(|e| e.to_string())?;
        }
    }
    store.metrics().revocations_synced.set(unix_now() as f64);
    Ok(())
}

/// A pub/sub connection: to the server, the current master, or the first
/// cluster node that answers (cluster messages reach every node).
async fn subscriber(store: &RedisStore) -> Result<redis::aio::PubSub, String> {
    let settings = store.settings();
    if let config::RedisMode::Sentinel { .. } = settings.mode {
        let client = store.master_client().await.map_err(|e| e.to_string())?;
        return client.get_async_pubsub().await.map_err(|e| e.to_string());
    }
    let mut last = String::from("no Redis URL");
    for url in &settings.urls {
        let attempt = async { store.client(url)?.get_async_pubsub().await };
        match tokio::time::timeout(settings.connect_timeout, attempt).await {
            Ok(Ok(pubsub)) => return Ok(pubsub),
            Ok(Err(error)) => last = error.to_string(),
            Err(_) => last = format!("{url}: connection timed out"),
        }
    }
    Err(last)
}
