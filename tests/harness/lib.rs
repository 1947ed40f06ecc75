//! The end-to-end test harness: runs the real `portcullis` binary with a
//! real configuration against real HTTP servers on loopback.
//!
//! - [`browser`]: headless Chromium opening a page served by the test, for
//!   what only a browser decides (CORS).
//! - [`webdriver`]: a W3C WebDriver client driving headless Chromium through
//!   `chromedriver`, for sign-in flows a real browser must click through.
//! - [`signin`]: an HTTP-only browser (cookie jar, redirects, the IdP's
//!   sign-in form) for sign-in flows that do not need Chromium.
//! - [`certs`]: a CA and certificates made with `openssl` at test time.
//! - [`client`]: a raw HTTP/1.1 client that sends exactly the bytes a test
//!   writes (no URL normalisation), for path and header attacks.
//! - [`servers`]: a recording echo upstream and a JWKS/discovery server whose
//!   faults (errors, hangs, garbage, rotation) a test controls.
//! - [`keys`]: signing keys and token minting, including forged tokens.
//! - [`proxy`]: starting, reloading, signalling and stopping the binary.
//! - [`oidc`]: the `oidc-provider` OpenID provider from `tests/idp`.
//! - [`redis`]: real `redis-server` processes, standalone and a cluster.
//! - [`grpc`]: a real gRPC server and client (Python `grpcio`), h2c.
//! - [`fixtures`]: the standard world most tests start from.
//! - [`config`]: the standard configuration as a builder, for tests that
//!   change part of it.
#![forbid(unsafe_code)]

pub mod browser;
pub mod certs;
pub mod client;
pub mod config;
pub mod fixtures;
pub mod grpc;
pub mod keys;
pub mod oidc;
pub mod proxy;
pub mod redis;
pub mod servers;
pub mod signin;
pub mod webdriver;

use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The runtime the in-test servers run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("harness")
            .build()
            .expect("harness runtime")
    })
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The first of `count` consecutive loopback ports that were all free a
/// moment ago (for `portcullis demo`, which takes port..port+3).
///
/// Chosen below the kernel's ephemeral range: inside it, the ports next to a
/// `bind(0)` port are the ones outgoing connections get (Linux gives odd
/// ports to `bind(0)` and even ones to `connect()`), and after a flood test
/// thousands of them sit in TIME_WAIT, where a listener cannot take them.
pub fn free_port_block(count: u16) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (ephemeral_start / 2, ephemeral_start.saturating_sub(count));
    let random = RandomState::new();
    for attempt in 0..500u64 {
        let first = low + (random.hash_one(attempt) % u64::from(high - low)) as u16;
        // Hold every port at once, so none of them is counted free twice.
        let held: Vec<TcpListener> =
            (first..first + count).filter_map(|port| TcpListener::bind(loopback(port)).ok()).collect();
        if held.len() == usize::from(count) {
            return first;
        }
    }
    panic!("no {count} consecutive free loopback ports below {ephemeral_start}");
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Poll `condition` until it holds or `timeout` passes.
/// The first line a helper process prints (its ready line), within
/// `timeout`: a process that never announces itself fails the test instead
/// of holding it until the runner's limit.
pub fn ready_line(stdout: impl std::io::Read + Send + 'static, what: &str, timeout: Duration) -> String {
    try_ready_line(stdout, timeout).unwrap_or_else(|why| panic!("{what}: {why}"))
}

/// [`ready_line`], or why there was none.
pub fn try_ready_line(stdout: impl std::io::Read + Send + 'static, timeout: Duration) -> Result<String, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line);
        let _ = sender.send(read);
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(e)) => Err(format!("reading the ready line: {e}")),
        Err(_) => Err(format!("no ready line within {timeout:?}")),
    }
}

pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    condition()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
