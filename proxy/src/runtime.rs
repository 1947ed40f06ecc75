//! The running policy: everything compiled from one configuration, swapped
//! atomically on reload.
//!
//! A request loads the current [`Runtime`] once and uses it to the end, so a
//! reload never changes the rules under a request in flight. State that must
//! survive reloads (JWKS caches, rate-limit buckets, the verified-token
//! cache) is carried over from the previous runtime when its configuration
//! did not change.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use config::{CertField, Config, CredentialKinds, HeaderValueSource, RouteCertificates, Upstream};
use http::HeaderName;
use ipnet::IpNet;
use policy::cors::CorsPolicy;
use policy::RouteTable;
use prometheus::IntCounter;

use crate::assertion::AssertionSigner;
use crate::auth::cache::TokenCache;
use crate::auth::Revocations;
use crate::auth::{AuthSettings, Authenticator, Challenges, IssuerState};
use crate::idp::IdpClient;
use crate::labels::NO_ROUTE;
use crate::metrics::{status_class, Metrics, RouteMetrics};
use crate::ratelimit::{LimitCounters, Limiter};
use crate::session::{Refreshes, Sessions};
use crate::store::revocations::RevocationBook;
use crate::store::RedisStore;
use crate::stripes::{PerStripe, StripedSwap};
use crate::tls::Certificates;

/// Where one upstream is, resolved when the configuration is applied (DNS
/// is never on the request path; a reload re-resolves).
pub(crate) struct UpstreamTarget {
    pub(crate) config: Upstream,
    pub(crate) address: SocketAddr,
    /// Its CA bundle and client certificate, read when the configuration
    /// was applied.
    pub(crate) tls: crate::tls::UpstreamCredentials,
    /// Response counters by status class.
    classes: PerStripe<[IntCounter; 5]>,
}

impl UpstreamTarget {
    pub(crate) fn count_status(&self, status: u16) {
        self.classes.local()[status_class(status)].inc();
    }
}

/// One compiled configuration.
pub(crate) struct Runtime {
    generation: u64,
    config: Config,
    routes: RouteTable,
    auth: Authenticator,
    upstreams: Vec<UpstreamTarget>,
    /// Configured identity headers (lower case), set from verified claims.
    identity_headers: Vec<HeaderName>,
    client_cert_headers: Vec<(HeaderName, CertField)>,
    limiters: Vec<Arc<Limiter>>,
    /// Request metrics per route (same index as the route table).
    route_metrics: Vec<RouteMetrics>,
    /// Request metrics of requests no route matched.
    unmatched_metrics: RouteMetrics,
    metrics: Arc<Metrics>,
    challenges: Challenges,
    redis: Option<Arc<RedisStore>>,
    revocation_book: Arc<RevocationBook>,
    /// Browser sign-in, when `sessions:` is configured.
    sessions: Option<Sessions>,
    /// Signs `upstream_assertion`s, when configured.
    assertion: Option<AssertionSigner>,
}

/// What runtimes are built with and share.
pub(crate) struct Shared {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) idp: Arc<IdpClient>,
    /// The denylist every configuration checks, and the book it is built
    /// from: revocations outlive reloads.
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) revocation_book: Arc<RevocationBook>,
    /// Redis, when `redis:` was configured at start.
    pub(crate) redis: Option<Arc<RedisStore>>,
    /// Session refreshes in flight: one per session across reloads.
    pub(crate) refreshes: Arc<Refreshes>,
    /// The certificates `listen` serves, when it was started with TLS;
    /// each configuration applied replaces them.
    pub(crate) certificates: Option<Arc<Certificates>>,
}

impl Shared {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        idp: Arc<IdpClient>,
        redis: Option<Arc<RedisStore>>,
        revocation: config::RevocationSettings,
    ) -> Shared {
        let revocations = Revocations::new();
        let revocation_book = RevocationBook::new(Arc::clone(&revocations), revocation, Arc::clone(&metrics));
        Shared { metrics, idp, revocations, revocation_book, redis, refreshes: Refreshes::new(), certificates: None }
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    /// Compile `config`, carrying state over from `previous` where the
    /// configuration it depends on is unchanged.
    pub(crate) fn build(config: Config, previous: Option<&Runtime>, shared: &Shared) -> anyhow::Result<Runtime> {
        let routes = RouteTable::new(config.routes.clone());
        let upstreams = resolve_upstreams(&config, &shared.metrics)?;
        let settings = AuthSettings {
            issuers: carry_issuers(&config, previous, shared),
            identity_headers: config.identity_headers.clone(),
            condition_claims: config.condition_claims.clone(),
            tokens: &config.tokens,
            cache: carry_token_cache(&config, previous),
            cache_ttl: config.token_cache.ttl,
            revocations: Arc::clone(&shared.revocations),
        };
        let auth = Authenticator::new(settings, Arc::clone(&shared.idp), Arc::clone(&shared.metrics))
            .with_api_keys(config.api_keys.as_ref());
        let identity_headers = config
            .identity_headers
            .iter()
            .map(|h| HeaderName::from_bytes(h.name.as_bytes()).context("identity header name"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client_cert_headers = config
            .identity_headers
            .iter()
            .zip(&identity_headers)
            .filter_map(|(header, name)| match header.source {
                HeaderValueSource::ClientCert(field) => Some((name.clone(), field)),
                _ => None,
            })
            .collect();
        let limiters = carry_limiters(&config, previous, &shared.metrics);
        if let Some(store) = &shared.redis {
            if config.redis.as_ref() != Some(store.settings()) {
                tracing::warn!("the 'redis' section changed; the connection made at start stays until a restart");
            }
        } else if config.redis.is_some() {
            tracing::warn!("'redis' was added; it takes effect at the next restart (limits stay local until then)");
        }
        let route_metrics = routes.routes().iter().map(|route| RouteMetrics::new(&route.name)).collect();
        let sessions = match &config.sessions {
            Some(settings) => {
                let issuer = auth.issuers().get(settings.issuer).context("sessions: the issuer is missing")?;
                Some(Sessions::new(
                    settings.clone(),
                    Arc::clone(issuer),
                    Arc::clone(&shared.idp),
                    shared.redis.clone(),
                    Arc::clone(&shared.refreshes),
                    Arc::clone(&shared.metrics),
                )?)
            }
            None => None,
        };
        // Last: everything else of this configuration is valid, so the new
        // certificates go into force only with it.
        match (&config.tls, &shared.certificates) {
            (Some(tls), Some(certificates)) => {
                certificates.replace(tls).map_err(|e| anyhow::anyhow!(e))?;
                shared.metrics.record_certificate_expiries(&certificates.expiries());
            }
            (Some(_), None) => tracing::warn!("'tls' was added; it takes effect at the next restart"),
            (None, Some(_)) => tracing::warn!("'tls' was removed; the listener keeps TLS until a restart"),
            (None, None) => {}
        }
        let assertion = config.upstream_assertion.as_ref().map(AssertionSigner::new).transpose()?;
        Ok(Runtime {
            assertion,
            sessions,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
            route_metrics,
            unmatched_metrics: RouteMetrics::new(NO_ROUTE),
            metrics: Arc::clone(&shared.metrics),
            challenges: Challenges::new(&config.realm, configured_credentials(&config)),
            routes,
            auth,
            upstreams,
            identity_headers,
            client_cert_headers,
            limiters,
            redis: shared.redis.clone(),
            revocation_book: Arc::clone(&shared.revocation_book),
            config,
        })
    }

    /// Counts configurations applied since start; metrics and logs show it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The configuration this runtime was compiled from.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub(crate) fn auth(&self) -> &Authenticator {
        &self.auth
    }

    /// The identity headers set upstream, by the index identities use.
    pub(crate) fn identity_headers(&self) -> &[HeaderName] {
        &self.identity_headers
    }

    /// The identity headers that carry client-certificate fields.
    pub(crate) fn client_cert_headers(&self) -> &[(HeaderName, CertField)] {
        &self.client_cert_headers
    }

    /// The limit at `index` in the configuration's list.
    pub(crate) fn limiter(&self, index: usize) -> Option<&Limiter> {
        self.limiters.get(index).map(|limiter| &**limiter)
    }

    pub(crate) fn limiters(&self) -> impl Iterator<Item = &Limiter> {
        self.limiters.iter().map(|limiter| &**limiter)
    }

    /// The request metrics of a route, or of unmatched requests.
    pub(crate) fn route_metrics(&self, route: Option<usize>) -> &RouteMetrics {
        route.and_then(|index| self.route_metrics.get(index)).unwrap_or(&self.unmatched_metrics)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The credential kinds a route accepts (for an unmatched path every
    /// kind a client sends explicitly, so its answer does not differ from a
    /// protected route's; a session cookie only where a route asks for it).
    pub(crate) fn accepted_credentials(&self, route: Option<usize>) -> CredentialKinds {
        let unmatched = CredentialKinds { session: false, ..CredentialKinds::ANY };
        route.and_then(|index| self.config.route_credentials.get(index).copied()).unwrap_or(unmatched)
    }

    /// The client certificates a route requires, if any.
    pub(crate) fn client_certs_of(&self, route: Option<usize>) -> Option<&RouteCertificates> {
        self.config.route_client_certs.get(route?)?.as_ref()
    }

    /// The CORS policy of a route, or for requests no route matched the
    /// main file's; `None` where the proxy does not handle CORS.
    pub(crate) fn cors_of(&self, route: Option<usize>) -> Option<&CorsPolicy> {
        match route {
            Some(index) => self.config.route_cors.get(index).and_then(Option::as_deref),
            None => self.config.cors.as_deref(),
        }
    }

    /// Redis, for limits with `store: redis` (`None` without `redis:`).
    pub(crate) fn redis(&self) -> Option<&RedisStore> {
        self.redis.as_deref()
    }

    /// Browser sign-in, when configured.
    pub(crate) fn sessions(&self) -> Option<&Sessions> {
        self.sessions.as_ref()
    }

    /// The upstream assertion's signer, when configured.
    pub(crate) fn assertion(&self) -> Option<&AssertionSigner> {
        self.assertion.as_ref()
    }

    /// Whether a browser navigation without a session is sent to sign in.
    pub(crate) fn browser_login(&self, route: Option<usize>) -> bool {
        route.and_then(|index| self.config.route_browser_login.get(index).copied()).unwrap_or(false)
    }

    pub(crate) fn revocation_book(&self) -> &RevocationBook {
        &self.revocation_book
    }

    pub(crate) fn challenges(&self) -> &Challenges {
        &self.challenges
    }

    /// Peers whose `X-Forwarded-For` is believed.
    pub(crate) fn trusted_proxies(&self) -> &[IpNet] {
        &self.config.trusted_proxies
    }

    /// The upstream a matched route forwards to.
    pub(crate) fn upstream_of(&self, route: usize) -> Option<&UpstreamTarget> {
        self.upstreams.get(self.routes.routes().get(route)?.upstream)
    }

    /// Why the proxy is not ready: issuers without keys (or, for
    /// introspection, without discovery). Empty when ready.
    pub(crate) fn unready_issuers(&self) -> Vec<String> {
        self.auth
            .issuers()
            .iter()
            .filter(|state| !state.is_ready())
            .map(|state| {
                let status = state.keys.status();
                match status.last_error {
                    Some(error) => format!("issuer '{}' has no keys: {error}", state.config().name),
                    None => format!("issuer '{}' has no keys yet", state.config().name),
                }
            })
            .collect()
    }
}

/// The credential kinds this configuration can authenticate at all.
pub(crate) fn configured_credentials(config: &Config) -> CredentialKinds {
    CredentialKinds {
        bearer: !config.issuers.is_empty() || config.api_keys.is_none(),
        api_key: config.api_keys.is_some(),
        session: config.sessions.is_some(),
    }
}

/// Upstream addresses, resolved now: DNS is never on the request path, and
/// a reload re-resolves.
fn resolve_upstreams(config: &Config, metrics: &Metrics) -> anyhow::Result<Vec<UpstreamTarget>> {
    config
        .upstreams
        .iter()
        .map(|upstream| {
            let address = (upstream.host.as_str(), upstream.port)
                .to_socket_addrs()
                .with_context(|| format!("upstream '{}': cannot resolve {}", upstream.name, upstream.address()))?
                .next()
                .with_context(|| format!("upstream '{}': {} has no address", upstream.name, upstream.address()))?;
            let classes = metrics.upstream_classes(&upstream.name);
            let tls = crate::tls::UpstreamCredentials::load(&upstream.upstream_tls)
                .map_err(|e| anyhow::anyhow!("upstream '{}': {e}", upstream.name))?;
            Ok(UpstreamTarget { config: upstream.clone(), address, tls, classes })
        })
        .collect()
}

/// An issuer whose configuration is unchanged keeps its state (keys,
/// refresh schedule, introspection cache); a new or changed one starts
/// fresh.
fn carry_issuers(config: &Config, previous: Option<&Runtime>, shared: &Shared) -> Vec<Arc<IssuerState>> {
    config
        .issuers
        .iter()
        .map(|issuer| {
            let reused = previous.and_then(|p| p.auth.issuers().iter().find(|state| state.config() == issuer)).cloned();
            reused.unwrap_or_else(|| {
                Arc::new(IssuerState::new(issuer.clone(), Arc::clone(&shared.idp), Arc::clone(&shared.metrics)))
            })
        })
        .collect()
}

/// Cached identities carry identity-header values and the claims route
/// conditions read: the cache is kept only while those and its size are
/// unchanged.
fn carry_token_cache(config: &Config, previous: Option<&Runtime>) -> Arc<TokenCache> {
    previous
        .filter(|p| {
            p.config.identity_headers == config.identity_headers
                && p.config.condition_claims == config.condition_claims
                && p.config.token_cache.max_entries == config.token_cache.max_entries
        })
        .map(|p| Arc::clone(p.auth.cache()))
        .unwrap_or_else(|| Arc::new(TokenCache::new(config.token_cache.max_entries)))
}

/// An unchanged limit keeps its buckets; a quota cannot change in place, so
/// a changed one starts empty.
fn carry_limiters(config: &Config, previous: Option<&Runtime>, metrics: &Metrics) -> Vec<Arc<Limiter>> {
    config
        .rate_limits
        .iter()
        .map(|limit| {
            previous.and_then(|p| p.limiters.iter().find(|l| l.config == *limit)).cloned().unwrap_or_else(|| {
                // Every limit's series exist from the start, at zero.
                metrics.rate_limit_keys.with_label_values(&[&limit.name]);
                let counters = LimitCounters {
                    rejected: metrics.rate_limited.with_label_values(&[&limit.name]),
                    overflowed: metrics.rate_limit_overflow.with_label_values(&[&limit.name]),
                };
                Arc::new(Limiter::new(limit.clone(), counters))
            })
        })
        .collect()
}

/// The runtime in force, swapped as a whole by a reload; each request
/// holds the one it started with (`StripedSwap::hold`) to its end.
pub(crate) type Current = Arc<StripedSwap<Runtime>>;
