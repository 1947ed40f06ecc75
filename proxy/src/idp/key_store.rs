//! One issuer's keys over time: fetched at start, refreshed periodically
//! and on demand (single-flight, rate-limited), kept across reloads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use config::{Issuer, KeySource};
use credentials::discovery::{self, Discovered};
use credentials::keys::{KeySet, MAX_KEYS};
use tokio::sync::watch;

use super::client::{FetchError, IdpClient};
use crate::metrics::Metrics;

/// The first retry delay while an issuer has no keys; it doubles per
/// failure up to the issuer's `min_refresh_interval`.
const FIRST_KEYS_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between attempts while an issuer has never had keys.
const FIRST_KEYS_MAX: Duration = Duration::from_secs(1);

/// What readiness reports about one issuer.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyStatus {
    /// Why the last fetch failed; cleared by a success.
    pub(crate) last_error: Option<String>,
}

/// The keys of one issuer over time: fetched at start, refreshed
/// periodically and on demand, kept across configuration reloads while the
/// issuer's configuration does not change.
pub(crate) struct KeyStore {
    issuer: Issuer,
    current: ArcSwapOption<KeySet>,
    status: Mutex<KeyStatus>,
    discovered: Mutex<Option<Discovered>>,
    /// Milliseconds since `epoch` of the last refresh attempt.
    last_attempt_ms: AtomicU64,
    in_flight: AtomicBool,
    /// Bumped after every refresh attempt; waiters watch it.
    attempts: watch::Sender<u64>,
    /// Milliseconds since `epoch` when the periodic loop tries next: the
    /// schedule (max-age, retries) and what `Retry-After` is computed from.
    next_attempt_ms: AtomicU64,
    /// Failed attempts in a row while no keys have ever been held.
    failures_without_keys: AtomicU32,
    epoch: Instant,
    client: Arc<IdpClient>,
    metrics: Arc<Metrics>,
}

impl KeyStore {
    /// Create the store. JWKS issuers start fetching at once, in the background.
    pub(crate) fn start(issuer: Issuer, client: Arc<IdpClient>, metrics: Arc<Metrics>) -> Arc<KeyStore> {
        let store = KeyStore::new(issuer, client, metrics);
        match &store.issuer.keys {
            KeySource::Secret { secret: Some(secret), .. } => {
                store.current.store(Some(Arc::new(KeySet::from_secret(secret.expose(), &store.issuer.algorithms))));
                store.record_keys(1);
            }
            KeySource::Secret { secret: None, .. } => {}
            KeySource::Jwks { .. } | KeySource::Discovery { .. } => {
                store.metrics.issuer_ready.with_label_values(&[&store.issuer.name]).set(0);
                let weak = Arc::downgrade(&store);
                store.client.handle().spawn(refresh_loop(weak));
            }
        }
        store
    }

    /// A store holding `keys` that never fetches (benchmarks, tests).
    pub(crate) fn preloaded(
        issuer: Issuer,
        keys: KeySet,
        client: Arc<IdpClient>,
        metrics: Arc<Metrics>,
    ) -> Arc<KeyStore> {
        let store = KeyStore::new(issuer, client, metrics);
        store.current.store(Some(Arc::new(keys)));
        store
    }

    fn new(issuer: Issuer, client: Arc<IdpClient>, metrics: Arc<Metrics>) -> Arc<KeyStore> {
        Arc::new(KeyStore {
            current: ArcSwapOption::empty(),
            status: Mutex::new(KeyStatus::default()),
            discovered: Mutex::new(None),
            last_attempt_ms: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            attempts: watch::Sender::new(0),
            next_attempt_ms: AtomicU64::new(0),
            failures_without_keys: AtomicU32::new(0),
            epoch: Instant::now(),
            issuer,
            client,
            metrics,
        })
    }

    pub(crate) fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The keys held now; `None` until the first successful fetch.
    pub(crate) fn keys(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Whether the current key set still holds the key with this
    /// fingerprint. Checked on every cache hit: a borrow of the current set,
    /// not a reference count taken and dropped.
    pub(crate) fn publishes(&self, key_id: u64) -> bool {
        self.current.load().as_ref().is_some_and(|keys| keys.contains(key_id))
    }

    pub(crate) fn status(&self) -> KeyStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn discovered(&self) -> Option<Discovered> {
        self.discovered.lock().ok().and_then(|d| d.clone())
    }

    /// Whole seconds until the next fetch attempt, at least 1 (an attempt
    /// due or running now); `None` for a store that never fetches.
    pub(crate) fn seconds_to_next_attempt(&self) -> Option<u64> {
        if matches!(self.issuer.keys, KeySource::Secret { .. }) {
            return None;
        }
        let wait_ms = self.next_attempt_ms.load(Ordering::Acquire).saturating_sub(self.now_ms());
        Some(wait_ms.div_ceil(1000).max(1))
    }

    /// Ask for a refresh because a token named an unknown key (or none are
    /// held yet). At most one refresh runs at a time and a new one starts at
    /// most once per `min_refresh_interval`, so a flood of random `kid`s
    /// costs the IdP almost nothing. Returns once the running or started
    /// refresh finishes, or at once when refreshing is not allowed yet.
    pub(crate) async fn refresh_for_unknown_key(self: &Arc<Self>) {
        if let Some(mut done) = self.trigger(false) {
            let _ = tokio::time::timeout(self.issuer.http_timeout * 2, done.changed()).await;
        }
    }

    /// Start a refresh unless one is running or (without `force`) one ran
    /// too recently. Returns a receiver that changes when it finishes.
    fn trigger(self: &Arc<Self>, force: bool) -> Option<watch::Receiver<u64>> {
        if matches!(self.issuer.keys, KeySource::Secret { .. }) {
            return None;
        }
        let done = self.attempts.subscribe();
        if self.in_flight.load(Ordering::Acquire) {
            return Some(done);
        }
        let now = self.now_ms();
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        let min_interval = duration_ms(self.issuer.min_refresh_interval);
        if !force && last != 0 && now.saturating_sub(last) < min_interval {
            return None;
        }
        if self.in_flight.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Some(done);
        }
        self.last_attempt_ms.store(now.max(1), Ordering::Release);
        let store = Arc::clone(self);
        self.client.handle().spawn(async move {
            store.refresh().await;
            store.in_flight.store(false, Ordering::Release);
            store.attempts.send_modify(|n| *n += 1);
        });
        Some(done)
    }

    /// One refresh: discovery when needed, then the JWKS.
    async fn refresh(&self) {
        let issuer = &self.issuer.name;
        let result = self.fetch_keys().await;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok((keys, skipped, max_age)) => {
                let count = keys.len();
                self.current.store(Some(Arc::new(keys)));
                drop(status.last_error.take());
                self.record_keys(count);
                self.failures_without_keys.store(0, Ordering::Release);
                self.metrics.jwks_fetches.with_label_values(&[issuer, "ok"]).inc();
                let delay = match max_age {
                    // max-age may shorten the refresh interval, never lengthen it.
                    Some(age) => age.clamp(self.issuer.min_refresh_interval, self.issuer.jwks_refresh),
                    None => self.issuer.jwks_refresh,
                };
                self.schedule(delay);
                if skipped > 0 {
                    tracing::debug!(issuer = %issuer, skipped, "JWKS entries skipped (unsupported or unusable)");
                }
                tracing::info!(issuer = %issuer, keys = count, "verification keys refreshed");
            }
            Err(error) => {
                self.metrics.jwks_fetches.with_label_values(&[issuer, error.label()]).inc();
                tracing::warn!(issuer = %issuer, error = %error, "JWKS refresh failed; keeping the keys held");
                status.last_error = Some(error.to_string());
                let retry = if self.current.load().is_some() {
                    // Retry sooner than a normal refresh, never faster than allowed.
                    self.issuer.min_refresh_interval.max(Duration::from_secs(1)).min(self.issuer.jwks_refresh)
                } else {
                    // No keys yet: the issuer is refused (503) and the proxy
                    // is not ready until a fetch succeeds. An IdP that starts
                    // after the proxy (compose, Kubernetes) should be noticed
                    // within a moment, not one `min_refresh_interval` later:
                    // back off from 250 ms instead.
                    let failures = self.failures_without_keys.fetch_add(1, Ordering::AcqRel);
                    // Maybe discovery pointed somewhere stale: ask again next time.
                    if let Ok(mut d) = self.discovered.lock() {
                        *d = None;
                    }
                    first_keys_backoff(failures, self.issuer.min_refresh_interval, self.issuer.jwks_refresh)
                };
                self.schedule(retry);
            }
        }
    }

    async fn fetch_keys(&self) -> Result<(KeySet, usize, Option<Duration>), FetchError> {
        let timeout = self.issuer.http_timeout;
        let jwks_uri = match &self.issuer.keys {
            KeySource::Jwks { uri } => uri.clone(),
            KeySource::Discovery { url } => match self.discovered() {
                Some(found) => found.jwks_uri,
                None => {
                    let document = self.client.get(url, timeout).await?;
                    let found = discovery::parse(&document.body, &self.issuer.issuer)
                        .map_err(|e| FetchError::Invalid(e.to_string()))?;
                    let uri = found.jwks_uri.clone();
                    if let Ok(mut d) = self.discovered.lock() {
                        *d = Some(found);
                    }
                    uri
                }
            },
            KeySource::Secret { .. } => return Err(FetchError::Invalid("HMAC issuers have no JWKS".into())),
        };
        let document = self.client.get(&jwks_uri, timeout).await?;
        let parsed = KeySet::from_jwks(&document.body, &self.issuer.algorithms)
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        Ok((parsed.keys, parsed.skipped, document.max_age))
    }

    /// Set the periodic loop's next attempt `delay` from now, at the end of
    /// every refresh. An on-demand refresh that ends while the loop sleeps
    /// towards a pending moment keeps that moment: the loop wakes then
    /// whatever happens meanwhile, so it is still the next attempt. The
    /// loop's timing is unchanged: `delay` after the refresh it waited for.
    fn schedule(&self, delay: Duration) {
        let now = self.now_ms();
        let next = now.saturating_add(duration_ms(delay));
        let _ = self
            .next_attempt_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| (pending <= now).then_some(next));
    }

    fn record_keys(&self, count: usize) {
        let name = &self.issuer.name;
        self.metrics.jwks_keys.with_label_values(&[name]).set(count.min(MAX_KEYS) as i64);
        self.metrics.issuer_ready.with_label_values(&[name]).set(1);
    }

    /// Wait for the first fetch to finish, if one is running and no keys are
    /// held yet (a request arriving during start-up).
    pub(crate) async fn wait_for_first_keys(self: &Arc<Self>) {
        if self.current.load().is_some() {
            return;
        }
        if let Some(mut done) = self.trigger(false) {
            let _ = tokio::time::timeout(self.issuer.http_timeout * 2, done.changed()).await;
        }
    }

    fn now_ms(&self) -> u64 {
        duration_ms(self.epoch.elapsed()) + 1
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The delay after the `failures`-th failure in a row (from 0) of an issuer
/// that never had keys: 250 ms doubling, at most [`FIRST_KEYS_MAX`],
/// `min_refresh_interval` (but never under 250 ms, so `0s` is no busy loop)
/// and `jwks_refresh`. The cap is a second, not the interval: an IdP that
/// comes up after a minute (Keycloak booting, a compose or Kubernetes start
/// in any order) is then noticed within a second, not up to 30 s later, at
/// the price of one small request a second to an IdP that is down.
fn first_keys_backoff(failures: u32, min_refresh_interval: Duration, jwks_refresh: Duration) -> Duration {
    FIRST_KEYS_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures))
        .min(FIRST_KEYS_MAX)
        .min(min_refresh_interval.max(FIRST_KEYS_BACKOFF))
        .min(jwks_refresh)
}

/// Periodic refresh for as long as the store is in use.
async fn refresh_loop(store: Weak<KeyStore>) {
    loop {
        let Some(strong) = store.upgrade() else { return };
        let done = strong.trigger(true);
        drop(strong);
        if let Some(mut done) = done {
            let _ = done.changed().await;
        }
        let Some(strong) = store.upgrade() else { return };
        let wait_ms = strong.next_attempt_ms.load(Ordering::Acquire).saturating_sub(strong.now_ms());
        drop(strong);
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keys_backoff_doubles_from_250_ms_up_to_a_second() {
        let (min, refresh) = (Duration::from_secs(30), Duration::from_secs(600));
        let delays: Vec<u64> = (0..10).map(|n| duration_ms(first_keys_backoff(n, min, refresh))).collect();
        assert_eq!(delays, [250, 500, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]);
        assert_eq!(first_keys_backoff(u32::MAX, min, refresh), FIRST_KEYS_MAX);
        // Never beyond min_refresh_interval or jwks_refresh, never a busy
        // loop with min_refresh_interval: 0s.
        assert_eq!(first_keys_backoff(9, Duration::from_millis(500), refresh), Duration::from_millis(500));
        assert_eq!(first_keys_backoff(9, min, Duration::from_millis(400)), Duration::from_millis(400));
        assert_eq!(first_keys_backoff(9, Duration::ZERO, refresh), FIRST_KEYS_BACKOFF);
        assert_eq!(first_keys_backoff(0, Duration::from_secs(1), refresh), FIRST_KEYS_BACKOFF);
        assert_eq!(first_keys_backoff(5, Duration::from_secs(1), refresh), Duration::from_secs(1));
    }
}
