//! The end-to-end test harness: runs the real `portcullis` binary with a
//! real configuration against real HTTP servers on loopback.
//!
//! - [`client`]: a raw HTTP/1.1 client that sends exactly the bytes a test
//!   writes (no URL normalisation), for path and header attacks.
//! - [`servers`]: a recording echo upstream and a JWKS/discovery server whose
//!   faults (errors, hangs, garbage, rotation) a test controls.
//! - [`keys`]: signing keys and token minting, including forged tokens.
//! - [`proxy`]: starting, reloading, signalling and stopping the binary.
//! - [`oidc`]: the `oidc-provider` OpenID provider from `tests/idp`.
//! - [`fixtures`]: the standard world most tests start from.
#![forbid(unsafe_code)]

pub mod client;
pub mod fixtures;
pub mod keys;
pub mod oidc;
pub mod proxy;
pub mod servers;

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
pub fn free_port_block(count: u16) -> u16 {
    for _ in 0..200 {
        let first = free_port();
        let Some(last) = first.checked_add(count - 1) else { continue };
        // Hold every port at once, so none of them is counted free twice.
        let held: Vec<TcpListener> = (first..=last).filter_map(|port| TcpListener::bind(loopback(port)).ok()).collect();
        if held.len() == usize::from(count) {
            return first;
        }
    }
    panic!("no {count} consecutive free loopback ports");
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Poll `condition` until it holds or `timeout` passes.
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
