//! Assembling and running the Pingora server: the proxy service, the admin
//! listener, reload and housekeeping in the background, and a graceful
//! shutdown that ends as soon as in-flight requests have drained.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service as ListeningService;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::Admin;
use crate::gateway::Gateway;
use crate::idp::IdpClient;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::runtime::{Current, Runtime, Shared};
use crate::store::RedisStore;
use crate::stripes::{InFlightCount, StripedSwap};
use crate::tls::Certificates;

/// How often idle rate-limit keys are pruned and gauges refreshed.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);

/// Everything needed to start serving one configuration.
pub struct Launch {
    pub config: config::Config,
    /// The file to reload from; `None` for an embedded configuration.
    pub config_path: Option<PathBuf>,
    /// Called once the listeners are about to start (the demo prints its
    /// instructions here).
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
}

/// Serve until a signal stops the process.
pub fn serve(launch: Launch) -> anyhow::Result<()> {
    let config = launch.config;
    // IdP calls get a runtime of their own, off the request threads.
    let idp_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-idp")
        .enable_all()
        .build()
        .context("starting the IdP runtime")?;
    let metrics = Arc::new(Metrics::new());
    // Redis gets a runtime of its own too: its I/O never runs on the
    // request threads, and a slow Redis cannot stall the IdP client.
    let redis_runtime = match &config.redis {
        Some(_) => Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("portcullis-redis")
                .enable_all()
                .build()
                .context("starting the Redis runtime")?,
        ),
        None => None,
    };
    let redis = config
        .redis
        .clone()
        .zip(redis_runtime.as_ref())
        .map(|(settings, runtime)| RedisStore::start(settings, runtime.handle().clone(), Arc::clone(&metrics)));
    let mut shared = Shared::new(
        Arc::clone(&metrics),
        Arc::new(IdpClient::new(idp_runtime.handle().clone())?),
        redis.clone(),
        config.revocation.clone(),
    );
    let tls = config.tls.clone();
    if let Some(settings) = &tls {
        shared.certificates = Some(Certificates::load(settings).map_err(|e| anyhow::anyhow!("tls: {e}"))?);
    }
    let shared = Arc::new(shared);
    if let Some(store) = &redis {
        store.handle().spawn(crate::store::revocations::follow(Arc::clone(store), Arc::clone(&shared.revocation_book)));
    }
    let listen = config.listen;
    let h2c = config.h2c;
    let admin_listen = config.admin_listen;
    // Pingora binds inside a service thread and only panics there when an
    // address is taken, leaving a process that runs but never listens.
    // Trying the addresses first turns the common case into a clear exit.
    ensure_can_listen("listen", listen)?;
    if let Some(redirect) = tls.as_ref().and_then(|t| t.redirect_listen) {
        ensure_can_listen("tls.redirect_listen", redirect)?;
    }
    if let Some(admin) = admin_listen {
        ensure_can_listen("admin_listen", admin)?;
    }
    let threads = config.threads;
    let grace = config.shutdown_grace;
    let runtime = Runtime::build(config, None, &shared)?;
    metrics.reloads.with_label_values(&["success"]).inc();
    metrics.config_generation.set(runtime.generation() as i64);
    metrics
        .last_reload_success
        .set(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
    let current: Current = Arc::new(StripedSwap::new(runtime));

    // Pingora's default pid file and upgrade socket live in /tmp and are
    // shared by every Pingora program on the host.
    let pid = std::process::id();
    let temp = |suffix: &str| std::env::temp_dir().join(format!("portcullis-{pid}.{suffix}"));
    let conf = ServerConf {
        threads,
        daemon: false,
        pid_file: temp("pid").to_string_lossy().into_owned(),
        upgrade_sock: temp("sock").to_string_lossy().into_owned(),
        grace_period_seconds: Some(grace.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let in_flight = Arc::new(InFlightCount::new());
    let gateway = Gateway::new(Arc::clone(&current), Arc::clone(&in_flight));
    let mut proxy = pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "portcullis");
    match (&tls, &shared.certificates) {
        (Some(settings), Some(certificates)) => {
            let _ = settings;
            let tls_settings =
                crate::tls::listener_settings(Arc::clone(certificates)).map_err(|e| anyhow::anyhow!("tls: {e}"))?;
            proxy.add_tls_with_settings(&listen.to_string(), None, tls_settings);
        }
        _ => proxy.add_tcp(&listen.to_string()),
    }
    if let Some(redirect) = tls.as_ref().and_then(|t| t.redirect_listen) {
        let app = crate::tls::RedirectToHttps { https_port: listen.port() };
        let mut service = ListeningService::new("portcullis https redirect".to_owned(), app);
        service.add_tcp(&redirect.to_string());
        service.threads = Some(1);
        server.add_service(service);
    }
    if let Some(app) = proxy.app_logic_mut() {
        // h2c: a connection that opens with the HTTP/2 preface is HTTP/2,
        // any other HTTP/1.1, so one port serves both.
        let mut options = HttpServerOptions::default();
        options.h2c = h2c;
        app.server_options = Some(options);
    }
    server.add_service(proxy);

    if let Some(admin_listen) = admin_listen {
        let mut admin = ListeningService::new(
            "portcullis admin".to_owned(),
            Admin::new(Arc::clone(&current), Arc::clone(&metrics)),
        );
        admin.add_tcp(&admin_listen.to_string());
        admin.threads = Some(1);
        server.add_service(admin);
    }
    if let Some(path) = launch.config_path {
        let reloader = Reloader::new(path, Arc::clone(&current), Arc::clone(&shared));
        server.add_service(background_service("reload", reloader));
    }
    server.add_service(background_service("housekeeping", Housekeeping { current: Arc::clone(&current) }));

    tracing::info!(%listen, admin = ?admin_listen, threads, "portcullis starting");
    if let Some(on_ready) = launch.on_ready {
        on_ready();
    }
    let stopping = Arc::new(AtomicBool::new(false));
    spawn_drain_watch(Arc::clone(&stopping), in_flight, grace);
    server.run(RunArgs { shutdown_signal: Box::new(Signals { stopping }) });
    drop(idp_runtime);
    drop(redis);
    if let Some(runtime) = redis_runtime {
        runtime.shutdown_background();
    }
    tracing::info!("portcullis stopped");
    Ok(())
}

/// Fail with the address and the reason when `address` cannot be bound.
/// The probe socket is closed at once; Pingora binds it again moments later.
fn ensure_can_listen(setting: &str, address: std::net::SocketAddr) -> anyhow::Result<()> {
    std::net::TcpListener::bind(address).map(drop).with_context(|| format!("{setting}: cannot listen on {address}"))
}

/// SIGTERM (and SIGQUIT: portcullis does not do binary upgrades) stop
/// gracefully, SIGINT at once. SIGHUP is the reload service's.
struct Signals {
    stopping: Arc<AtomicBool>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::quit()))
        else {
            tracing::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        let graceful = tokio::select! {
            _ = term.recv() => true,
            _ = quit.recv() => true,
            _ = int.recv() => false,
        };
        self.stopping.store(true, Ordering::Release);
        if graceful {
            tracing::info!("SIGTERM: no new connections; draining requests in flight");
            ShutdownSignal::GracefulTerminate
        } else {
            tracing::info!("SIGINT: stopping now");
            ShutdownSignal::FastShutdown
        }
    }
}

/// Pingora waits out the whole grace period even when nothing is in flight.
/// This watcher ends the process as soon as the last request has finished
/// (or lets Pingora's grace period expire first).
fn spawn_drain_watch(stopping: Arc<AtomicBool>, in_flight: Arc<InFlightCount>, grace: Duration) {
    std::thread::Builder::new()
        .name("portcullis-drain".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let started = Instant::now();
            // Let the listeners close and keep-alive connections notice.
            std::thread::sleep(Duration::from_millis(250));
            while started.elapsed() < grace {
                if in_flight.total() == 0 {
                    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained; exiting");
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::warn!(in_flight = in_flight.total(), "grace period over; exiting");
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::warn!(error = %e, "no drain watcher; shutdown waits the full grace period"));
}

/// Periodic upkeep: prune idle rate-limit keys and expired revocations.
struct Housekeeping {
    current: Current,
}

#[async_trait]
impl BackgroundService for Housekeeping {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut interval = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => {
                    let runtime = self.current.load_full();
                    for limiter in runtime.limiters() {
                        limiter.prune();
                    }
                    runtime.revocation_book().prune();
                    runtime.auth().prune();
                }
            }
        }
    }
}
