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
use arc_swap::ArcSwap;
use config::{Config, Upstream};
use http::HeaderName;
use ipnet::IpNet;
use policy::RouteTable;
use prometheus::IntCounter;

use crate::auth::cache::TokenCache;
use crate::auth::{Authenticator, IssuerState};
use crate::idp::IdpClient;
use crate::metrics::{status_class, Metrics, RouteMetrics};
use crate::ratelimit::{LimitCounters, Limiter};

/// Where one upstream is, resolved when the configuration is applied (DNS
/// is never on the request path; a reload re-resolves).
pub struct UpstreamTarget {
    pub config: Upstream,
    pub address: SocketAddr,
    /// Response counters by status class.
    classes: [IntCounter; 5],
}

impl UpstreamTarget {
    pub fn count_status(&self, status: u16) {
        self.classes[status_class(status)].inc();
    }
}

/// Precomputed `WWW-Authenticate` values (RFC 6750 section 3).
#[derive(Debug, Clone)]
pub struct Challenges {
    /// No credentials: no error code.
    pub plain: String,
    pub invalid_request: String,
    /// Prefix for `invalid_token` and `insufficient_scope`.
    pub realm: String,
}

impl Challenges {
    fn new(realm: &str) -> Challenges {
        let realm = format!("Bearer realm=\"{realm}\"");
        Challenges { plain: realm.clone(), invalid_request: format!("{realm}, error=\"invalid_request\""), realm }
    }

    pub fn invalid_token(&self, description: &str) -> String {
        format!("{}, error=\"invalid_token\", error_description=\"{}\"", self.realm, description)
    }

    pub fn insufficient_scope(&self, scope: &str) -> String {
        if scope.is_empty() {
            format!("{}, error=\"insufficient_scope\"", self.realm)
        } else {
            format!("{}, error=\"insufficient_scope\", scope=\"{}\"", self.realm, scope)
        }
    }
}

/// One compiled configuration.
pub struct Runtime {
    pub generation: u64,
    pub config: Config,
    pub routes: RouteTable,
    pub auth: Authenticator,
    pub upstreams: Vec<UpstreamTarget>,
    /// Configured identity headers (lower case), set from verified claims.
    pub identity_headers: Vec<HeaderName>,
    pub limiters: Vec<Arc<Limiter>>,
    /// Request metrics per route (same index as the route table).
    pub route_metrics: Vec<RouteMetrics>,
    /// Request metrics of requests no route matched.
    pub unmatched_metrics: RouteMetrics,
    pub metrics: Arc<Metrics>,
    pub challenges: Challenges,
    pub trusted_proxies: Vec<IpNet>,
}

/// What runtimes are built with and share.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub idp: Arc<IdpClient>,
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    /// Compile `config`, reusing state from `previous` where the relevant
    /// configuration is unchanged.
    pub fn build(config: Config, previous: Option<&Runtime>, shared: &Shared) -> anyhow::Result<Runtime> {
        let routes = RouteTable::new(config.routes.clone());
        let upstreams = config
            .upstreams
            .iter()
            .map(|upstream| {
                let address = (upstream.host.as_str(), upstream.port)
                    .to_socket_addrs()
                    .with_context(|| format!("upstream '{}': cannot resolve {}", upstream.name, upstream.address()))?
                    .next()
                    .with_context(|| format!("upstream '{}': {} has no address", upstream.name, upstream.address()))?;
                let classes = shared.metrics.upstream_classes(&upstream.name);
                Ok(UpstreamTarget { config: upstream.clone(), address, classes })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let issuers = config
            .issuers
            .iter()
            .map(|issuer| {
                let reused =
                    previous.and_then(|p| p.auth.issuers().iter().find(|state| state.config() == issuer)).cloned();
                reused.unwrap_or_else(|| {
                    Arc::new(IssuerState::new(issuer.clone(), Arc::clone(&shared.idp), Arc::clone(&shared.metrics)))
                })
            })
            .collect();

        // Cached identities carry identity-header values: keep the cache only
        // when those headers and the cache's size are unchanged.
        let cache = previous
            .filter(|p| {
                p.config.identity_headers == config.identity_headers
                    && p.config.token_cache.max_entries == config.token_cache.max_entries
            })
            .map(|p| Arc::clone(p.auth.cache()))
            .unwrap_or_else(|| Arc::new(TokenCache::new(config.token_cache.max_entries)));
        let auth = Authenticator::new(
            issuers,
            config.identity_headers.clone(),
            cache,
            config.token_cache.ttl,
            Arc::clone(&shared.idp),
            Arc::clone(&shared.metrics),
        );

        let identity_headers = config
            .identity_headers
            .iter()
            .map(|h| HeaderName::from_bytes(h.name.as_bytes()).context("identity header name"))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let limiters = config
            .rate_limits
            .iter()
            .map(|limit| {
                previous.and_then(|p| p.limiters.iter().find(|l| l.config == *limit)).cloned().unwrap_or_else(|| {
                    // Every limit's series exist from the start, at zero.
                    shared.metrics.rate_limit_keys.with_label_values(&[&limit.name]);
                    let counters = LimitCounters {
                        rejected: shared.metrics.rate_limited.with_label_values(&[&limit.name]),
                        overflowed: shared.metrics.rate_limit_overflow.with_label_values(&[&limit.name]),
                    };
                    Arc::new(Limiter::new(limit.clone(), counters))
                })
            })
            .collect();

        let route_metrics = routes.routes().iter().map(|route| RouteMetrics::new(&route.name)).collect();
        Ok(Runtime {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
            route_metrics,
            unmatched_metrics: RouteMetrics::new(crate::gateway::access_log::NO_ROUTE),
            metrics: Arc::clone(&shared.metrics),
            challenges: Challenges::new(&config.realm),
            trusted_proxies: config.trusted_proxies.clone(),
            routes,
            auth,
            upstreams,
            identity_headers,
            limiters,
            config,
        })
    }

    /// The upstream a matched route forwards to.
    pub fn upstream_of(&self, route: usize) -> Option<&UpstreamTarget> {
        self.upstreams.get(self.routes.routes().get(route)?.upstream)
    }

    /// Every issuer has keys (or can introspect): the readiness condition.
    pub fn unready_issuers(&self) -> Vec<String> {
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

/// The current runtime, swapped atomically.
pub type Current = Arc<ArcSwap<Runtime>>;
