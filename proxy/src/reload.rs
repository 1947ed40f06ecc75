//! Hot reload: on SIGHUP or a change to the configuration or a policy file,
//! parse → validate → build → swap atomically.
//!
//! Directories are watched rather than files, so editors that save by
//! writing a new file and renaming it, and new files that start matching a
//! `policy_files` glob, are seen. A bad file keeps the running policy: its
//! errors are logged with FILE:LINE:COL and counted. Requests in flight keep
//! the runtime they loaded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::runtime::{Current, Runtime, Shared};

/// Several file events arrive for one save; wait this long for quiet.
const DEBOUNCE: Duration = Duration::from_millis(200);

pub(crate) struct Reloader {
    config_path: PathBuf,
    current: Current,
    shared: Arc<Shared>,
    /// The files as they were when the running configuration was loaded.
    at_load: Snapshot,
}

impl Reloader {
    /// Call right after loading the configuration that `current` holds: a
    /// change from then until the watcher is armed is still noticed.
    pub(crate) fn new(config_path: PathBuf, current: Current, shared: Arc<Shared>) -> Reloader {
        let at_load = snapshot(&current);
        Reloader { config_path, current, shared, at_load }
    }

    /// Load, validate and apply the configuration. Returns whether it applied.
    pub(crate) async fn reload(&self, trigger: &str) -> bool {
        let path = self.config_path.clone();
        let previous = self.current.load_full();
        let shared = Arc::clone(&self.shared);
        // File reads, validation and DNS resolution are blocking work.
        let built = tokio::task::spawn_blocking(move || -> Result<Runtime, Vec<String>> {
            let loaded = config::load(&path, config::Mode::Serve)
                .map_err(|e| e.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            for warning in &loaded.warnings {
                tracing::warn!(target: "portcullis::config", "{warning}");
            }
            Runtime::build(loaded.config, Some(&previous), &shared).map_err(|e| vec![format!("{e:#}")])
        })
        .await
        .unwrap_or_else(|e| Err(vec![format!("reload task failed: {e}")]));

        let metrics = &self.shared.metrics;
        match built {
            Ok(runtime) => {
                let old = self.current.load();
                warn_restart_only_changes(old.config(), runtime.config());
                crate::logging::set_level(&runtime.config().log.level);
                let generation = runtime.generation();
                let routes = runtime.routes().len();
                self.current.store(Arc::new(runtime));
                metrics.reloads.with_label_values(&["success"]).inc();
                metrics.last_reload_success.set(unix_seconds());
                metrics.config_generation.set(generation as i64);
                tracing::info!(trigger, generation, routes, "configuration reloaded");
                true
            }
            Err(errors) => {
                metrics.reloads.with_label_values(&["failure"]).inc();
                for error in &errors {
                    tracing::error!(target: "portcullis::config", "{error}");
                }
                tracing::error!(trigger, "configuration not reloaded; the running policy stays in force");
                false
            }
        }
    }

    /// Directories to watch: those of every source file and of every glob.
    fn watched_dirs(&self) -> BTreeSet<PathBuf> {
        let runtime = self.current.load();
        let mut dirs = BTreeSet::new();
        for file in &runtime.config().sources {
            if let Some(dir) = file.parent() {
                dirs.insert(absolute(dir));
            }
        }
        for glob in &runtime.config().policy_globs {
            if let Some(dir) = glob_base(glob) {
                dirs.insert(absolute(&dir));
            }
        }
        dirs
    }
}

/// File contents (None when unreadable) by path.
#[derive(Clone, PartialEq, Eq)]
struct Snapshot(Vec<(Option<Vec<u8>>, PathBuf)>);

/// What the running configuration's files look like now: every source
/// file's contents and every file a policy glob matches. Comparing snapshots
/// catches every way a file changes: in place, by rename, through a
/// Kubernetes ConfigMap's `..data` symlink swap, or by a new file that
/// starts matching a glob.
fn snapshot(current: &Current) -> Snapshot {
    let runtime = current.load();
    let mut files: Vec<PathBuf> = runtime.config().sources.clone();
    for pattern in &runtime.config().policy_globs {
        if let Ok(paths) = glob::glob(pattern) {
            files.extend(paths.filter_map(Result::ok));
        }
    }
    files.sort();
    files.dedup();
    Snapshot(files.into_iter().map(|path| (std::fs::read(&path).ok(), path)).collect())
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; reload on signal is disabled");
                None
            }
        };
        let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
        // One event up front: the proxy may have been serving (and its files
        // edited) before this service started, and the event path compares
        // the files with what was loaded.
        let _ = events_tx.send(());
        let mut watcher = match new_watcher(events_tx) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(%error, "cannot watch configuration files; reload with SIGHUP");
                None
            }
        };
        let mut watching = BTreeSet::new();
        self.rewatch(&mut watcher, &mut watching);
        let mut last_seen = self.at_load.clone();

        loop {
            let trigger = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hangups.as_mut() { Some(h) => h.recv().await, None => None } } => "SIGHUP",
                Some(_) = events.recv() => {
                    // Let the burst of events of one save settle, then look
                    // at what actually changed.
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    // A glob's directory may have just been created.
                    self.rewatch(&mut watcher, &mut watching);
                    if snapshot(&self.current) == last_seen {
                        continue;
                    }
                    "file change"
                }
            };
            // Taken before loading: a change landing while the reload runs
            // then differs from it and triggers another reload, instead of
            // being mistaken for what was loaded. Whatever the outcome, this
            // state has been looked at: a broken file is reported once.
            let seen = snapshot(&self.current);
            self.reload(trigger).await;
            last_seen = seen;
            self.rewatch(&mut watcher, &mut watching);
        }
    }
}

impl Reloader {
    /// Watch what the configuration needs, stop watching what it no longer
    /// does. A directory that does not exist yet is tried again after the
    /// next event (its parent is watched, so its creation is one).
    fn rewatch(&self, watcher: &mut Option<RecommendedWatcher>, watching: &mut BTreeSet<PathBuf>) {
        let Some(watcher) = watcher else { return };
        let wanted = self.watched_dirs();
        for dir in watching.difference(&wanted) {
            let _ = watcher.unwatch(dir);
        }
        watching.retain(|dir| wanted.contains(dir));
        for dir in &wanted {
            if watching.contains(dir) || !dir.is_dir() {
                continue;
            }
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watching.insert(dir.clone());
                }
                Err(error) => tracing::warn!(dir = %dir.display(), %error, "cannot watch directory"),
            }
        }
    }
}

fn new_watcher(events: mpsc::UnboundedSender<()>) -> notify::Result<RecommendedWatcher> {
    notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = events.send(());
            }
        }
    })
}

/// The directory part of a glob before its first wildcard.
fn glob_base(glob: &str) -> Option<PathBuf> {
    let path = Path::new(glob);
    let mut base = PathBuf::new();
    for component in path.components() {
        let text = component.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            return Some(base);
        }
        base.push(component);
    }
    base.parent().map(Path::to_path_buf)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn unix_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn warn_restart_only_changes(old: &config::Config, new: &config::Config) {
    let changed = [
        ("listen", old.listen != new.listen),
        ("h2c", old.h2c != new.h2c),
        (
            "tls.redirect_listen",
            old.tls.as_ref().map(|t| t.redirect_listen) != new.tls.as_ref().map(|t| t.redirect_listen),
        ),
        ("admin_listen", old.admin_listen != new.admin_listen),
        ("threads", old.threads != new.threads),
        ("log_format", old.log.format != new.log.format),
    ];
    for (field, differs) in changed {
        if differs {
            tracing::warn!(field, "this setting changed but only takes effect on restart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_ROUTE: &str =
        "upstreams:\n  api:\n    url: http://127.0.0.1:9\nroutes:\n  - path: /a\n    public: true\n";

    /// The window this closes: the proxy serves (and an operator edits its
    /// file) before the reload service has armed its watcher.
    #[tokio::test]
    async fn an_edit_made_before_the_watcher_is_armed_is_applied() {
        let dir = std::env::temp_dir().join(format!("portcullis-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("portcullis.yaml");
        std::fs::write(&path, ONE_ROUTE).unwrap();
        let loaded = config::load(&path, config::Mode::Serve).unwrap();
        let shared = Arc::new(Shared::new(
            Arc::new(crate::metrics::Metrics::new()),
            Arc::new(crate::idp::IdpClient::new(tokio::runtime::Handle::current()).unwrap()),
            None,
            config::RevocationSettings::default(),
        ));
        let runtime = Runtime::build(loaded.config, None, &shared).unwrap();
        let current: Current = Arc::new(crate::stripes::StripedSwap::new(runtime));
        let reloader = Arc::new(Reloader::new(path.clone(), Arc::clone(&current), shared));

        std::fs::write(&path, format!("{ONE_ROUTE}  - path: /b\n    public: true\n")).unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let service = tokio::spawn({
            let reloader = Arc::clone(&reloader);
            async move { reloader.start(shutdown).await }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while current.load().routes().len() != 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let routes = current.load().routes().len();
        let _ = stop.send(true);
        let _ = service.await;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(routes, 2, "the edit made before the watcher started was not applied");
    }

    #[test]
    fn glob_bases() {
        assert_eq!(glob_base("/etc/p/policies/*.yaml"), Some(PathBuf::from("/etc/p/policies")));
        assert_eq!(glob_base("/etc/p/a/**/x.yaml"), Some(PathBuf::from("/etc/p/a")));
        assert_eq!(glob_base("/etc/p/one.yaml"), Some(PathBuf::from("/etc/p")));
    }
}
