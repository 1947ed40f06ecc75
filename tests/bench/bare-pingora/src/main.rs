//! bare-pingora: forwards every request to one fixed upstream, untouched.
//!
//! Usage: bare-pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]
//! e.g.   bare-pingora 127.0.0.1:18080 127.0.0.1:18000 1
//!
//! No access log, no header rewriting; upstream connections are pooled and
//! reused exactly as in portcullis (same `HttpPeer` defaults plus an idle
//! timeout), the listener has the same (default) socket options, and the
//! allocator is portcullis's, mimalloc: like compared with like.

use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Passthrough {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bare-pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]");
        std::process::exit(2);
    }
    let threads = args.get(3).map_or(1, |t| t.parse().expect("THREADS must be a number"));

    // Pingora's default pid file and upgrade socket under /tmp are shared by
    // every Pingora program on the host: give this process its own.
    let pid = std::process::id();
    let temp = |suffix: &str| std::env::temp_dir().join(format!("bare-pingora-{pid}.{suffix}"));
    let conf = ServerConf {
        threads,
        daemon: false,
        pid_file: temp("pid").to_string_lossy().into_owned(),
        upgrade_sock: temp("sock").to_string_lossy().into_owned(),
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = http_proxy_service(&server.configuration, Passthrough { upstream: args[2].clone() });
    proxy.add_tcp(&args[1]);
    server.add_service(proxy);
    server.run_forever();
}
