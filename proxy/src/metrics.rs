//! Prometheus metrics. Every label is bounded by configuration (route,
//! issuer, upstream and limit names) or by a fixed set (decisions, results,
//! status classes); never a raw path, subject or token.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::labels::{AuthPath, Outcome};
use crate::stripes::{stripe, PerStripe};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Latency buckets from 50 µs to 10 s: the proxy's own work is sub-millisecond.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Every metric the proxy exposes, registered once at start.
pub struct Metrics {
    registry: Registry,
    pub requests: Striped<IntCounterVec>,
    pub request_duration: Striped<HistogramVec>,
    pub auth_duration: Striped<HistogramVec>,
    pub upstream_responses: Striped<IntCounterVec>,
    pub jwks_fetches: IntCounterVec,
    pub jwks_keys: IntGaugeVec,
    pub issuer_ready: IntGaugeVec,
    pub introspections: IntCounterVec,
    pub token_cache_hits: Striped<IntCounter>,
    pub token_cache_misses: Striped<IntCounter>,
    pub token_cache_entries: IntGauge,
    pub rate_limited: IntCounterVec,
    pub rate_limit_keys: IntGaugeVec,
    pub rate_limit_overflow: IntCounterVec,
    pub reloads: IntCounterVec,
    pub last_reload_success: Gauge,
    pub config_generation: IntGauge,
    /// Clients that closed their connection before the answer was complete.
    pub client_disconnects: IntCounter,
    /// JWTs refused from the refused-token set, without a verification.
    pub refused_token_hits: Striped<IntCounter>,
    /// Requests refused (429) because their client is over its
    /// failed-authentication budget.
    pub failed_auth_budget_refusals: Striped<IntCounter>,
    /// Credentials refused because they are revoked.
    pub revoked_requests: IntCounter,
    /// Revocations held in memory.
    pub revocations: IntGauge,
    /// Unix time of the last full read of the revocations from Redis.
    pub revocations_synced: Gauge,
    /// Redis commands by operation and result (`ok`, `error`, `timeout`,
    /// `skipped` while the breaker is open).
    pub redis_commands: IntCounterVec,
    pub redis_duration: HistogramVec,
    /// 1 while the breaker stops Redis calls after repeated failures.
    pub redis_breaker_open: IntGauge,
    /// Rate-limit decisions by limit, store (`redis`, `local`) and result.
    pub rate_limit_decisions: IntCounterVec,
    /// Browser sign-ins by result: `started`, `completed`, `failed_<why>`.
    pub sign_ins: IntCounterVec,
    /// Session access-token refreshes by result (`ok`, `refused`,
    /// `unavailable`).
    pub session_refreshes: IntCounterVec,
    pub logouts: IntCounter,
    /// `notAfter` of each certificate `listen` serves, by file (Unix
    /// seconds): alert on it minus `time()`.
    pub tls_certificate_expiry: GaugeVec,
    /// `auth_duration` by [`AuthPath`], resolved once per stripe: label
    /// lookups take a lock and a hash per call, too much for every request.
    auth_by_path: PerStripe<[Histogram; AuthPath::COUNT]>,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are fixed and unique; a failure here is a programming error that
    // the unit test below catches.
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e)))
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e)))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    register(registry, Gauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e)))
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e));
    register(registry, metric)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e));
    register(registry, metric)
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    register(registry, new_histogram_vec(name, help, labels))
}

fn new_histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable_metric(name, e))
}

/// A metric every request records, striped (see [`Striped`]).
fn striped<M: Collector + Clone + 'static>(registry: &Registry, make: impl FnMut() -> M) -> Striped<M> {
    register(registry, Striped::new(make))
}

#[cold]
fn unreachable_metric(name: &str, error: prometheus::Error) -> ! {
    // Only reachable with an invalid constant name or label; covered by tests.
    panic!("invalid metric definition {name}: {error}")
}

impl Metrics {
    /// The certificates in force now, replacing those of the last set.
    pub(crate) fn record_certificate_expiries(&self, expiries: &[(String, u64)]) {
        self.tls_certificate_expiry.reset();
        for (file, not_after) in expiries {
            self.tls_certificate_expiry.with_label_values(&[file.as_str()]).set(*not_after as f64);
        }
    }

    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let build = GaugeVec::new(Opts::new("portcullis_build_info", "Build information; always 1."), &["version"])
            .unwrap_or_else(|e| unreachable_metric("portcullis_build_info", e));
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        register(r, build);
        let new_counter =
            |name: &str, help: &str| IntCounter::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e));
        let new_counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e))
        };
        let token_cache_hits = striped(r, || {
            new_counter("portcullis_token_cache_hits_total", "Tokens answered from the verified-token cache.")
        });
        let token_cache_misses = striped(r, || {
            new_counter("portcullis_token_cache_misses_total", "Tokens not in the verified-token cache.")
        });
        let token_cache_entries =
            int_gauge(r, "portcullis_token_cache_entries", "Entries in the verified-token cache.");
        let last_reload_success = gauge(
            r,
            "portcullis_config_last_reload_success_timestamp_seconds",
            "Unix time of the last configuration load that applied.",
        );
        let config_generation =
            int_gauge(r, "portcullis_config_generation", "Number of configurations applied since start.");
        let auth_duration = striped(r, || {
            new_histogram_vec(
                "portcullis_auth_duration_seconds",
                "Time spent authenticating the token and deciding, by how the token was checked.",
                &["source"],
            )
        });
        let auth_by_path = PerStripe::new(|stripe| {
            std::array::from_fn(|i| auth_duration.copy(stripe).with_label_values(&[AuthPath::ALL[i].label()]))
        });
        let client_disconnects = counter(
            r,
            "portcullis_client_disconnects_total",
            "Requests whose client closed the connection before the answer was complete.",
        );
        // A forged-token flood records these on every request.
        let refused_token_hits = striped(r, || {
            new_counter(
                "portcullis_refused_token_hits_total",
                "JWTs refused again from the set of recently refused tokens, without a verification.",
            )
        });
        let failed_auth_budget_refusals = striped(r, || {
            new_counter(
                "portcullis_failed_auth_budget_refusals_total",
                "Requests refused with 429 before any verification: the client sent too many invalid tokens.",
            )
        });
        let revoked_requests =
            counter(r, "portcullis_revoked_requests_total", "Requests whose credential is revoked (refused, 401).");
        let revocations = int_gauge(r, "portcullis_revocations", "Revocations in force, held in memory.");
        let revocations_synced = gauge(
            r,
            "portcullis_revocations_last_sync_timestamp_seconds",
            "Unix time of the last full read of the revocations from Redis (0: never).",
        );
        let redis_breaker_open =
            int_gauge(r, "portcullis_redis_breaker_open", "1 while Redis calls are skipped after repeated failures.");
        let tls_certificate_expiry = register(
            r,
            GaugeVec::new(
                Opts::new(
                    "portcullis_tls_certificate_expiry_timestamp_seconds",
                    "Unix time at which each certificate served on listen expires, by certificate file.",
                ),
                &["file"],
            )
            .unwrap_or_else(|e| unreachable_metric("portcullis_tls_certificate_expiry_timestamp_seconds", e)),
        );
        Metrics {
            tls_certificate_expiry,
            auth_by_path,
            client_disconnects,
            refused_token_hits,
            failed_auth_budget_refusals,
            revoked_requests,
            revocations,
            revocations_synced,
            redis_breaker_open,
            redis_commands: counter_vec(
                r,
                "portcullis_redis_commands_total",
                "Redis commands by operation and result.",
                &["operation", "result"],
            ),
            redis_duration: histogram_vec(
                r,
                "portcullis_redis_command_duration_seconds",
                "Redis command latency by operation.",
                &["operation"],
            ),
            rate_limit_decisions: counter_vec(
                r,
                "portcullis_rate_limit_decisions_total",
                "Decisions of Redis-backed limits by limit, the store that decided and result.",
                &["limit", "store", "result"],
            ),
            sign_ins: counter_vec(
                r,
                "portcullis_sign_ins_total",
                "Browser sign-ins by result: started, completed, or failed_ and the reason.",
                &["result"],
            ),
            session_refreshes: counter_vec(
                r,
                "portcullis_session_refreshes_total",
                "Refreshes of a browser session's access token, by result.",
                &["result"],
            ),
            logouts: counter(r, "portcullis_logouts_total", "Browser sessions ended at the logout path."),
            requests: striped(r, || {
                new_counter_vec("portcullis_requests_total", "Requests by route and decision.", &["route", "decision"])
            }),
            request_duration: striped(r, || {
                new_histogram_vec(
                    "portcullis_request_duration_seconds",
                    "Time from request to response, including the upstream, by route.",
                    &["route"],
                )
            }),
            auth_duration,
            upstream_responses: striped(r, || {
                new_counter_vec(
                    "portcullis_upstream_responses_total",
                    "Responses from upstreams by upstream and status class.",
                    &["upstream", "class"],
                )
            }),
            jwks_fetches: counter_vec(
                r,
                "portcullis_jwks_fetches_total",
                "JWKS and discovery fetches by issuer and result.",
                &["issuer", "result"],
            ),
            jwks_keys: gauge_vec(r, "portcullis_jwks_keys", "Verification keys held, by issuer.", &["issuer"]),
            issuer_ready: gauge_vec(
                r,
                "portcullis_issuer_ready",
                "1 when the issuer has usable keys, else 0.",
                &["issuer"],
            ),
            introspections: counter_vec(
                r,
                "portcullis_introspection_requests_total",
                "RFC 7662 introspection calls by issuer and result.",
                &["issuer", "result"],
            ),
            token_cache_hits,
            token_cache_misses,
            token_cache_entries,
            rate_limited: counter_vec(
                r,
                "portcullis_rate_limit_rejections_total",
                "Requests refused with 429, by limit.",
                &["limit"],
            ),
            rate_limit_keys: gauge_vec(r, "portcullis_rate_limit_keys", "Keys tracked, by limit.", &["limit"]),
            rate_limit_overflow: counter_vec(
                r,
                "portcullis_rate_limit_overflow_total",
                "Requests keyed to the shared overflow bucket because the limit tracks max_keys keys.",
                &["limit"],
            ),
            reloads: counter_vec(r, "portcullis_config_reloads_total", "Configuration reloads by result.", &["result"]),
            last_reload_success,
            config_generation,
            registry,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }

    /// The authentication-time histogram of one [`AuthPath`], this
    /// thread's stripe.
    pub(crate) fn auth_timer(&self, path: AuthPath) -> &Histogram {
        &self.auth_by_path.local()[path.index()]
    }

    /// Counters of one upstream's responses by status class, resolved once
    /// per stripe.
    pub fn upstream_classes(&self, upstream: &str) -> PerStripe<[IntCounter; 5]> {
        PerStripe::new(|stripe| {
            ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|class| self.upstream_responses.copy(stripe).with_label_values(&[upstream, class]))
        })
    }
}

/// A status code's class as an index into [`Metrics::upstream_classes`].
pub(crate) fn status_class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// The metrics of one route, resolved on first use: creating every
/// (route, decision) series up front would expose thousands of zeros for a
/// large policy. Each stripe resolves its own handles, when a thread of
/// that stripe first records.
#[derive(Default)]
pub(crate) struct RouteMetrics {
    name: Box<str>,
    duration: OnceLock<PerStripe<OnceLock<Histogram>>>,
    by_outcome: [OnceLock<PerStripe<OnceLock<IntCounter>>>; Outcome::COUNT],
}

impl RouteMetrics {
    pub(crate) fn new(name: &str) -> RouteMetrics {
        RouteMetrics { name: name.into(), ..RouteMetrics::default() }
    }

    pub(crate) fn record(&self, metrics: &Metrics, outcome: Outcome, start: std::time::Instant) {
        let stripe = stripe();
        self.by_outcome[outcome.index()]
            .get_or_init(|| PerStripe::new(|_| OnceLock::new()))
            .at(stripe)
            .get_or_init(|| metrics.requests.copy(stripe).with_label_values(&[&self.name, outcome.label()]))
            .inc();
        let duration = self
            .duration
            .get_or_init(|| PerStripe::new(|_| OnceLock::new()))
            .at(stripe)
            .get_or_init(|| metrics.request_duration.copy(stripe).with_label_values(&[&self.name]));
        observe_since(duration, start);
    }
}

/// A metric every request records, in one copy per stripe, summed into one
/// family at each scrape. One shared copy is a few atomic words that every
/// core writes on every request: with two threads, a shared counter and
/// histogram did 0.24× the work of one thread (`benches/contention.rs`).
/// The exposition is the same as one metric's.
#[derive(Clone)]
pub struct Striped<M> {
    copies: Arc<PerStripe<M>>,
}

impl<M> Striped<M> {
    pub(crate) fn new(mut make: impl FnMut() -> M) -> Striped<M> {
        Striped { copies: Arc::new(PerStripe::new(|_| make())) }
    }

    /// This thread's copy.
    pub fn local(&self) -> &M {
        self.copies.local()
    }

    fn copy(&self, stripe: usize) -> &M {
        self.copies.at(stripe)
    }
}

impl<M: Collector> Collector for Striped<M> {
    fn desc(&self) -> Vec<&Desc> {
        self.copy(0).desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        sum_families(self.copies.iter().flat_map(|copy| copy.collect()))
    }
}

/// Families of the same names summed into one each: counters, gauges and
/// histograms (count, sum and every bucket) of the same labels added.
fn sum_families(families: impl Iterator<Item = MetricFamily>) -> Vec<MetricFamily> {
    let mut summed: Vec<SummedFamily> = Vec::new();
    for mut family in families {
        let metrics = family.take_metric();
        let at = match summed.iter().position(|into| into.family.name() == family.name()) {
            Some(at) => at,
            None => {
                summed.push(SummedFamily { family, by_labels: HashMap::new() });
                summed.len() - 1
            }
        };
        if let Some(into) = summed.get_mut(at) {
            metrics.into_iter().for_each(|metric| into.add(metric));
        }
    }
    summed.into_iter().map(|summed| summed.family).collect()
}

/// A family being summed, with where each label set's metric is.
struct SummedFamily {
    family: MetricFamily,
    by_labels: HashMap<Vec<(String, String)>, usize>,
}

impl SummedFamily {
    fn add(&mut self, metric: prometheus::proto::Metric) {
        let labels: Vec<(String, String)> =
            metric.get_label().iter().map(|pair| (pair.name().to_owned(), pair.value().to_owned())).collect();
        let kind = self.family.get_field_type();
        let metrics = self.family.mut_metric();
        let Some(existing) = self.by_labels.get(&labels).and_then(|&at| metrics.get_mut(at)) else {
            self.by_labels.insert(labels, metrics.len());
            metrics.push(metric);
            return;
        };
        match kind {
            MetricType::COUNTER => {
                let mut counter = existing.get_counter().clone();
                counter.set_value(counter.get_value() + metric.get_counter().get_value());
                existing.set_counter(counter);
            }
            MetricType::GAUGE => {
                let mut gauge = existing.get_gauge().clone();
                gauge.set_value(gauge.get_value() + metric.get_gauge().get_value());
                existing.set_gauge(gauge);
            }
            MetricType::HISTOGRAM => {
                let (mut histogram, more) = (existing.get_histogram().clone(), metric.get_histogram());
                histogram.set_sample_count(histogram.get_sample_count() + more.get_sample_count());
                histogram.set_sample_sum(histogram.get_sample_sum() + more.get_sample_sum());
                let buckets = histogram
                    .get_bucket()
                    .iter()
                    .zip(more.get_bucket())
                    .map(|(bucket, other)| {
                        let mut bucket = bucket.clone();
                        bucket.set_cumulative_count(bucket.cumulative_count() + other.cumulative_count());
                        bucket
                    })
                    .collect();
                histogram.set_bucket(buckets);
                existing.set_histogram(histogram);
            }
            // Never striped.
            MetricType::SUMMARY | MetricType::UNTYPED => {}
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A timer for histograms without allocation.
pub(crate) fn observe_since(histogram: &Histogram, start: std::time::Instant) {
    histogram.observe(start.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripes::STRIPES;

    #[test]
    fn striped_metrics_expose_the_sum_of_every_thread() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let route = std::sync::Arc::new(RouteMetrics::new("/r"));
        // More threads than stripes: some stripes are shared, all are summed.
        let threads: Vec<_> = (0..STRIPES + 3)
            .map(|_| {
                let (metrics, route) = (std::sync::Arc::clone(&metrics), std::sync::Arc::clone(&route));
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        metrics.token_cache_hits.local().inc();
                        metrics.auth_timer(AuthPath::Cache).observe(0.0002);
                        route.record(&metrics, Outcome::Allow, std::time::Instant::now());
                    }
                    metrics.upstream_classes("api").local()[status_class(503)].inc();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let total = (STRIPES + 3) * 100;
        let text = String::from_utf8(metrics.encode()).unwrap();
        let line = |prefix: &str| {
            let found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
            assert_eq!(found.len(), 1, "one series {prefix}: {found:?}");
            found[0].rsplit(' ').next().unwrap().to_owned()
        };
        assert_eq!(line("portcullis_token_cache_hits_total "), total.to_string());
        assert_eq!(line("portcullis_requests_total{decision=\"allow\",route=\"/r\"}"), total.to_string());
        assert_eq!(line("portcullis_request_duration_seconds_count{route=\"/r\"}"), total.to_string());
        assert_eq!(line("portcullis_request_duration_seconds_bucket{route=\"/r\",le=\"+Inf\"}"), total.to_string());
        assert_eq!(line("portcullis_auth_duration_seconds_bucket{source=\"cache\",le=\"0.00025\"}"), total.to_string());
        assert_eq!(line("portcullis_auth_duration_seconds_bucket{source=\"cache\",le=\"0.0001\"}"), "0");
        let sum: f64 = line("portcullis_auth_duration_seconds_sum{source=\"cache\"}").parse().unwrap();
        assert!((sum - total as f64 * 0.0002).abs() < 1e-9, "{sum}");
        assert_eq!(
            line("portcullis_upstream_responses_total{class=\"5xx\",upstream=\"api\"}"),
            (STRIPES + 3).to_string()
        );
        assert_eq!(text.matches("# TYPE portcullis_requests_total counter").count(), 1, "one family");
    }

    #[test]
    fn every_metric_registers_and_encodes() {
        let metrics = Metrics::new();
        metrics.requests.local().with_label_values(&["r", "allow"]).inc();
        metrics.upstream_classes("api").local()[status_class(204)].inc();
        let text = String::from_utf8(metrics.encode()).unwrap();
        assert!(text.contains("portcullis_requests_total{decision=\"allow\",route=\"r\"} 1"));
        assert!(text.contains("portcullis_upstream_responses_total{class=\"2xx\",upstream=\"api\"} 1"));
        assert!(text.contains("portcullis_build_info"));
        assert!(text.contains("portcullis_token_cache_entries 0"));
    }
}
