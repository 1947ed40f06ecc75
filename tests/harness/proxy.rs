//! Running the real `portcullis` binary.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::client::{get, Response};
use crate::{free_port_block, loopback, wait_until};

/// The binary under test: `$PORTCULLIS_BIN`, or the workspace's debug
/// build (built once if missing or stale; cargo decides).
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("PORTCULLIS_BIN") {
            return PathBuf::from(path);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        // The same selection as `cargo test --workspace`, hence the same
        // feature set: with `-p portcullis` alone Cargo unifies features
        // differently, rebuilds the binary and then the test run rebuilds it back.
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--bins", "--tests"])
            .current_dir(&workspace)
            .status()
            .expect("running cargo build for the portcullis binary");
        assert!(status.success(), "building the portcullis binary failed");
        target.join("debug").join("portcullis")
    })
}

/// A running proxy, killed when dropped.
pub struct Proxy {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

/// How to start a proxy.
pub struct ProxyOptions<'a> {
    /// The configuration without `listen` and `admin_listen` (added here).
    pub config: &'a str,
    pub env: &'a [(&'a str, &'a str)],
    /// Wait for `/readyz` (every issuer has keys), not just `/healthz`.
    pub wait_ready: bool,
}

impl Proxy {
    /// Start with `config` (no `listen`/`admin_listen`) and wait until it is ready.
    /// The standard fixtures' HMAC secret is in the environment.
    pub fn start(config: &str) -> Proxy {
        let env = [(crate::fixtures::HS_ENV, crate::fixtures::HS_SECRET)];
        Proxy::start_with(ProxyOptions { config, env: &env, wait_ready: true })
    }

    /// The ports were free a moment before portcullis binds them; when
    /// another test's connection takes one in between, portcullis exits
    /// naming it and we start again on other ports.
    pub fn start_with(options: ProxyOptions<'_>) -> Proxy {
        for _ in 0..3 {
            let mut proxy = Proxy::spawn(&options);
            if proxy.wait_started(options.wait_ready) {
                return proxy;
            }
        }
        panic!("portcullis found its ports taken three times in a row");
    }

    fn spawn(options: &ProxyOptions<'_>) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        // Random ports below the ephemeral range, not `bind(0)` ones: the
        // kernel hands a just-released `bind(0)` port to the next caller,
        // so two proxies started at once by parallel tests could both get
        // it, and Pingora listens with SO_REUSEPORT, so neither would fail:
        // requests would be shared between them.
        let port = free_port_block(1);
        let admin_port = std::iter::repeat_with(|| free_port_block(1)).find(|p| *p != port).unwrap_or(port);
        let config_path = dir.path().join("portcullis.yaml");
        fs::write(&config_path, with_listeners(options.config, port, admin_port)).expect("write config");
        let log_path = dir.path().join("portcullis.log");
        let log = fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(binary());
        command
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .env_remove("RUST_LOG");
        for (name, value) in options.env {
            command.env(name, value);
        }
        let child = command.spawn().expect("starting portcullis");
        Proxy { child: Some(child), addr: loopback(port), admin: loopback(admin_port), dir, config_path, log_path }
    }

    /// Wait until the proxy answers; false when it exited because one of its
    /// ports was taken, a panic for any other failure.
    fn wait_started(&mut self, ready: bool) -> bool {
        let path = if ready { "/readyz" } else { "/healthz" };
        let mut port_taken = false;
        let started = wait_until(Duration::from_secs(20), || {
            if let Some(status) = self.try_wait() {
                let logs = self.logs();
                port_taken = logs.contains("cannot listen on");
                assert!(port_taken, "portcullis exited during start ({status}):\n{logs}");
                return true;
            }
            TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
                && crate::client::send_raw(
                    self.admin,
                    format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
                )
                .is_ok_and(|r| r.status == 200)
        });
        assert!(started, "portcullis did not become {}:\n{}", if ready { "ready" } else { "healthy" }, self.logs());
        !port_taken
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Replace the configuration file (listeners kept) the way an editor
    /// does: write a new file and rename it over the old one.
    pub fn rewrite_config(&self, config: &str) {
        let text = with_listeners(config, self.addr.port(), self.admin.port());
        write_atomically(&self.config_path, &text);
    }

    /// Write a file next to the configuration (policy files), atomically.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create directory");
        }
        write_atomically(&path, text);
        path
    }

    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            let pid = child.id();
            let status =
                Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("running kill");
            assert!(status.success(), "kill -{signal} {pid} failed");
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn metrics(&self) -> String {
        get(self.admin, "/metrics", &[]).text()
    }

    /// The value of one sample line in `/metrics` (exact name and labels).
    pub fn metric(&self, series: &str) -> Option<f64> {
        parse_metric(&self.metrics(), series)
    }

    pub fn admin_get(&self, path: &str) -> Response {
        get(self.admin, path, &[])
    }
}

/// The value of `series` (name with its label set, as exposed) in a scrape.
pub fn parse_metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `config` with the listeners, and [`PROXY_PORT`] replaced by the
/// proxy's port (a `public_url` must name it before the port is chosen).
fn with_listeners(config: &str, port: u16, admin_port: u16) -> String {
    let config = config.replace(PROXY_PORT, &port.to_string());
    format!("listen: \"127.0.0.1:{port}\"\nadmin_listen: \"127.0.0.1:{admin_port}\"\n{config}")
}

/// Written in a configuration where the proxy's own port belongs.
pub const PROXY_PORT: &str = "@PROXY_PORT@";

fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp-write");
    fs::write(&temp, text).expect("write temp file");
    fs::rename(&temp, path).expect("rename into place");
}

/// Run the binary with arguments to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(binary());
    command.args(args).stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("running portcullis");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
