//! State shared by replicas, in Redis (or Valkey): rate limits with
//! `store: redis` (`limits`), the revocation denylist (`revocations`) and
//! browser sessions with `sessions.store: redis` (`sessions`).
//!
//! One connection per process on a Tokio runtime of its own (like the IdP
//! client) for the background work and sessions, and one per worker thread
//! for rate-limit decisions: a decision sent on the shared connection was
//! handed over to the Redis runtime's thread and back, two context
//! switches per request (the CPU of a `store: redis` request doubled, and on
//! a busy core the Redis thread waited for a time slice). A worker's
//! connection is opened on its own runtime in the background; the shared
//! one serves until it is up, and after every reconnection of the shared
//! one. A request waits for Redis at most `command_timeout`; after repeated
//! failures a breaker skips Redis for a short while, so a dead Redis costs
//! a request nothing. Every key is an HMAC of what it stands for: no
//! username, address or header value is ever written to Redis.

pub(crate) mod limits;
pub(crate) mod revocations;
pub(crate) mod sessions;

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use aws_lc_rs::hmac;
use config::{RedisMode, RedisSettings};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Consecutive failures that open the breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long the open breaker skips Redis before trying again.
const BREAKER_OPEN: Duration = Duration::from_secs(2);
/// First and longest wait between connection attempts: a replica started
/// before Redis connects within about a second of Redis coming up.
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// Why Redis did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("not connected to Redis")]
    NotConnected,
    #[error("Redis calls are paused after repeated failures")]
    BreakerOpen,
    #[error("Redis did not answer within the command timeout")]
    Timeout,
    #[error("Redis: {0}")]
    Command(String),
}

impl StoreError {
    fn label(&self) -> &'static str {
        match self {
            StoreError::NotConnected | StoreError::BreakerOpen => "skipped",
            StoreError::Timeout => "timeout",
            StoreError::Command(_) => "error",
        }
    }
}

/// A connection in any mode; clones share it.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The master the Sentinels named when this connection was made.
    Sentinel(MultiplexedConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Sentinel(c) => c.get_db(),
        }
    }
}

/// The process's Redis: connection, breaker, key hashing.
pub(crate) struct RedisStore {
    /// Tells this store's worker connections from another's.
    id: u64,
    /// This store, for the tasks that open worker connections.
    me: Weak<RedisStore>,
    settings: RedisSettings,
    handle: Handle,
    connection: ArcSwapOption<Connection>,
    /// Counts the shared connections put in place: a worker connection
    /// opened before the latest is replaced (a Sentinel failover moves the
    /// master).
    generation: AtomicU64,
    /// Asks the connection task to connect again (Sentinel failover).
    reconnect: Notify,
    hash_key: hmac::Key,
    breaker: Breaker,
    /// The revocation subscription is up: the one Redis connection that
    /// notices an outage without any request traffic.
    following: AtomicBool,
    metrics: Arc<Metrics>,
}

impl RedisStore {
    /// Start connecting on `handle`'s runtime; an unreachable Redis is
    /// retried in the background, never an error here.
    pub(crate) fn start(settings: RedisSettings, handle: Handle, metrics: Arc<Metrics>) -> Arc<RedisStore> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let hash_key = hmac::Key::new(hmac::HMAC_SHA256, settings.hash_key.expose());
        let store = Arc::new_cyclic(|me| RedisStore {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            me: me.clone(),
            settings,
            handle: handle.clone(),
            connection: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            reconnect: Notify::new(),
            hash_key,
            breaker: Breaker::default(),
            following: AtomicBool::new(false),
            metrics,
        });
        handle.spawn(keep_connected(Arc::clone(&store)));
        store
    }

    pub(crate) fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether a connection has been made (and not given up).
    pub(crate) fn connected(&self) -> bool {
        self.connection.load().is_some()
    }

    /// Connected, the breaker closed, and the revocation subscription up.
    pub(crate) fn available(&self) -> bool {
        self.connected() && !self.breaker.is_open() && self.following.load(Ordering::Acquire)
    }

    /// Set by the revocation follower as its subscription comes and goes.
    pub(crate) fn set_following(&self, up: bool) {
        self.following.store(up, Ordering::Release);
    }

    /// A key under the prefix: `kind:` and the HMAC of `parts` (each
    /// length-prefixed, so no two different part lists share a key).
    pub(crate) fn hashed_key(&self, kind: &str, parts: &[&[u8]]) -> String {
        let mut context = hmac::Context::with_key(&self.hash_key);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let tag = context.sign();
        let mut key = format!("{}{kind}:", self.settings.key_prefix);
        for byte in &tag.as_ref()[..16] {
            key.push_str(&format!("{byte:02x}"));
        }
        key
    }

    /// A plain key under the prefix (the revocation set and channel).
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.key_prefix)
    }

    /// Run `operation` on the Redis runtime within the command timeout,
    /// counting it and feeding the breaker.
    pub(crate) async fn run<T, F, Fut>(&self, operation: &'static str, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.run_within(operation, self.settings.command_timeout, command).await
    }

    /// [`Self::run`] with another timeout (background work that reads a
    /// whole set, off the request path).
    pub(crate) async fn run_within<T, F, Fut>(
        &self,
        operation: &'static str,
        timeout: Duration,
        command: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let result = self.attempt(timeout, command).await;
        self.account(operation, started, &result);
        result
    }

    /// [`Self::run`] on this worker thread's own connection, once it is
    /// open: the command is driven by the thread's runtime, with no
    /// hand-over to the Redis runtime's thread and back.
    pub(crate) async fn run_here<T, F, Fut>(&self, operation: &'static str, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let timeout = self.settings.command_timeout;
        let worker = if self.breaker.is_open() { None } else { self.worker_connection() };
        let result = match worker {
            Some(connection) => match tokio::time::timeout(timeout, command(connection)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(StoreError::Command(error.to_string())),
                Err(_) => Err(StoreError::Timeout),
            },
            // The breaker's answer, or the shared connection.
            None => self.attempt(timeout, command).await,
        };
        self.account(operation, started, &result);
        result
    }

    /// This worker thread's connection, or `None` while it is being opened
    /// (one attempt at a time, retried after a failure) or before the
    /// shared connection is up.
    fn worker_connection(&self) -> Option<Connection> {
        let generation = self.generation.load(Ordering::Acquire);
        if generation == 0 {
            return None;
        }
        WORKER_CONNECTIONS.with(|cell| {
            let mut connections = cell.try_borrow_mut().ok()?;
            let index = match connections.iter().position(|c| c.store == self.id) {
                Some(index) => index,
                None => {
                    connections.push(WorkerConnection::new(self.id, generation));
                    connections.len() - 1
                }
            };
            let mine = connections.get_mut(index)?;
            if mine.generation != generation {
                *mine = WorkerConnection::new(self.id, generation);
            }
            if let Some(connection) = mine.slot.get() {
                return Some(connection.clone());
            }
            let now = Instant::now();
            if now >= mine.retry_at {
                let runtime = Handle::try_current().ok()?;
                let deadline = self.settings.connect_timeout * 2;
                mine.retry_at = now + deadline + RECONNECT_MIN;
                let (store, slot) = (self.me.clone(), Arc::clone(&mine.slot));
                runtime.spawn(async move {
                    let Some(store) = store.upgrade() else { return };
                    if let Ok(Ok(connection)) = tokio::time::timeout(deadline, store.connect()).await {
                        let _ = slot.set(connection); // an attempt at a time: nothing else sets it
                    }
                });
            }
            None
        })
    }

    /// Count a command and its result, and feed the breaker.
    fn account<T>(&self, operation: &'static str, started: Instant, result: &Result<T, StoreError>) {
        self.metrics.redis_duration.with_label_values(&[operation]).observe(started.elapsed().as_secs_f64());
        let label = match result {
            Ok(_) => "ok",
            Err(error) => error.label(),
        };
        self.metrics.redis_commands.with_label_values(&[operation, label]).inc();
        match result {
            Ok(_) => self.breaker.succeeded(&self.metrics),
            Err(StoreError::BreakerOpen | StoreError::NotConnected) => {}
            Err(error) => {
                self.breaker.failed(error, &self.metrics);
                if matches!(self.settings.mode, RedisMode::Sentinel { .. }) {
                    self.reconnect.notify_one();
                }
            }
        }
    }

    async fn attempt<T, F, Fut>(&self, timeout: Duration, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        if self.breaker.is_open() {
            return Err(StoreError::BreakerOpen);
        }
        let Some(connection) = self.connection.load_full() else { return Err(StoreError::NotConnected) };
        let mut task = self.handle.spawn(command((*connection).clone()));
        let outcome = tokio::time::timeout(timeout, &mut task).await;
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(StoreError::Command(error.to_string())),
            Ok(Err(join)) => Err(StoreError::Command(join.to_string())),
            Err(_) => {
                task.abort();
                Err(StoreError::Timeout)
            }
        }
    }

    /// A client for one node: the server, a cluster node or (for pub/sub)
    /// the master; with the configured credentials and CA.
    pub(crate) fn client(&self, url: &str) -> RedisResult<Client> {
        let info = url.into_connection_info()?;
        let info = info.clone().set_redis_settings(self.with_credentials(info.redis_settings().clone()));
        match self.certificates()? {
            Some(certificates) => Client::build_with_tls(info, certificates),
            None => Client::open(info),
        }
    }

    /// The configured ACL user and password on a node's settings.
    fn with_credentials(&self, mut node: redis::RedisConnectionInfo) -> redis::RedisConnectionInfo {
        if let Some(username) = &self.settings.username {
            node = node.set_username(username);
        }
        if let Some(password) = &self.settings.password {
            node = node.set_password(String::from_utf8_lossy(password.expose()));
        }
        node
    }

    /// The private CA for `rediss://`, when one is configured.
    fn certificates(&self) -> RedisResult<Option<redis::TlsCertificates>> {
        let Some(path) = &self.settings.ca_file else { return Ok(None) };
        Ok(Some(redis::TlsCertificates { client_tls: None, root_cert: Some(std::fs::read(path)?) }))
    }

    async fn connect(&self) -> RedisResult<Connection> {
        let settings = &self.settings;
        match &settings.mode {
            RedisMode::Standalone => {
                let client = self.client(&settings.urls[0])?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.connect_timeout))
                    .set_response_timeout(Some(settings.command_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(RECONNECT_MAX);
                Ok(Connection::Single(ConnectionManager::new_with_config(client, config).await?))
            }
            RedisMode::Cluster => {
                let mut builder = ClusterClientBuilder::new(settings.urls.clone())
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.command_timeout)
                    .retries(1);
                if let Some(username) = &settings.username {
                    builder = builder.username(username);
                }
                if let Some(password) = &settings.password {
                    builder = builder.password(String::from_utf8_lossy(password.expose()));
                }
                if let Some(certificates) = self.certificates()? {
                    builder = builder.certs(certificates);
                }
                Ok(Connection::Cluster(builder.build()?.get_async_connection().await?))
            }
            RedisMode::Sentinel { .. } => {
                let client = self.master_client().await?;
                Ok(Connection::Sentinel(client.get_multiplexed_async_connection().await?))
            }
        }
    }

    /// Sentinel mode: a client for the master the Sentinels name now.
    pub(crate) async fn master_client(&self) -> RedisResult<Client> {
        let RedisMode::Sentinel { master_name } = &self.settings.mode else {
            return self.client(&self.settings.urls[0]);
        };
        let node = self.with_credentials(redis::RedisConnectionInfo::default());
        let info = redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
        let mut sentinel = redis::sentinel::SentinelClient::build(
            self.settings.urls.clone(),
            master_name.as_str(),
            Some(info),
            redis::sentinel::SentinelServerType::Master,
        )?;
        sentinel.async_get_client().await
    }
}

/// Connect, and keep connecting: until the first connection succeeds (the
/// connection manager and the cluster client reconnect by themselves after
/// that), and in Sentinel mode again whenever a command fails.
async fn keep_connected(store: Arc<RedisStore>) {
    let mut delay = RECONNECT_MIN;
    let mut reported = false;
    loop {
        match tokio::time::timeout(store.settings.connect_timeout * 2, store.connect()).await {
            Ok(Ok(connection)) => {
                store.connection.store(Some(Arc::new(connection)));
                store.generation.fetch_add(1, Ordering::AcqRel);
                tracing::info!(mode = store.settings.mode.name(), "connected to Redis");
                if !matches!(store.settings.mode, RedisMode::Sentinel { .. }) {
                    return;
                }
                store.reconnect.notified().await;
                delay = RECONNECT_MIN;
                reported = false;
                continue;
            }
            Ok(Err(error)) if !reported => {
                tracing::warn!(%error, "cannot connect to Redis yet; retrying in the background");
                reported = true;
            }
            Err(_) if !reported => {
                tracing::warn!("connecting to Redis timed out; retrying in the background");
                reported = true;
            }
            _ => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// A worker thread's own connection to one store.
struct WorkerConnection {
    store: u64,
    /// The shared connection's generation when this one was asked for.
    generation: u64,
    /// Filled by the task that opens it.
    slot: Arc<OnceLock<Connection>>,
    /// No new attempt to open it before then.
    retry_at: Instant,
}

impl WorkerConnection {
    fn new(store: u64, generation: u64) -> WorkerConnection {
        WorkerConnection { store, generation, slot: Arc::default(), retry_at: Instant::now() }
    }
}

thread_local! {
    /// This thread's connections, one per store (one store per process,
    /// but tests start several).
    static WORKER_CONNECTIONS: RefCell<Vec<WorkerConnection>> = const { RefCell::new(Vec::new()) };
}

/// Stops calling Redis for [`BREAKER_OPEN`] after [`BREAKER_THRESHOLD`]
/// consecutive failures; logs each change once.
#[derive(Default)]
struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `EPOCH` until which calls are skipped.
    open_until: AtomicU64,
    /// Whether the last transition logged was "open".
    tripped: AtomicBool,
}

fn millis_now() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Breaker {
    fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) > millis_now()
    }

    fn succeeded(&self, metrics: &Metrics) {
        if self.failures.swap(0, Ordering::Relaxed) > 0 && self.tripped.swap(false, Ordering::Relaxed) {
            metrics.redis_breaker_open.set(0);
            tracing::info!("Redis answers again; shared limits and revocations are back");
        }
    }

    fn failed(&self, error: &StoreError, metrics: &Metrics) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= BREAKER_THRESHOLD {
            self.open_until.store(millis_now() + BREAKER_OPEN.as_millis() as u64, Ordering::Relaxed);
            metrics.redis_breaker_open.set(1);
            if !self.tripped.swap(true, Ordering::Relaxed) {
                tracing::warn!(%error, failures, "Redis is failing; skipping it for {BREAKER_OPEN:?} at a time");
            }
        }
    }
}
