//! A real browser for the tests that only a browser can answer (CORS):
//! headless Chromium (Debian's `chromium`) opens a page served here, the
//! page's script calls the proxy, and reports what the browser let it see
//! by posting JSON back to the page's own server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

use crate::{runtime, wait_until};

/// The Chromium binary: `PORTCULLIS_CHROMIUM`, else `chromium` on the PATH
/// (`.ci/run` installs Debian's package).
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("PORTCULLIS_CHROMIUM") {
        return PathBuf::from(path);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("Chromium is needed for the browser tests: apt-get install chromium (or set PORTCULLIS_CHROMIUM)");
}

/// How every test runs Chromium: headless, no sandbox (containers), and
/// nothing that would reach the network by itself.
pub const HEADLESS_ARGS: [&str; 11] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    "--password-store=basic",
];

/// Serves one HTML page at `/` and records what the page posts to
/// `/report`.
pub struct PageServer {
    pub addr: SocketAddr,
    page: Arc<Mutex<String>>,
    reports: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl PageServer {
    /// A server with an empty page (see [`PageServer::set_page`]): its
    /// address, the page's origin, is known before the page is written.
    pub fn start() -> PageServer {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let page = Arc::new(Mutex::new(String::new()));
        let listener = runtime().block_on(TcpListener::bind("127.0.0.1:0")).expect("bind page server");
        let addr = listener.local_addr().expect("page server address");
        let (log, html) = (Arc::clone(&reports), Arc::clone(&page));
        runtime().spawn(crate::servers::serve(listener, move |request: Request<Incoming>| {
            let (log, page) = (Arc::clone(&log), html.lock().expect("page").clone());
            async move {
                if request.uri().path() == "/report" {
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let report = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    log.lock().expect("reports").push(report);
                    return Response::new(Full::new(Bytes::new()));
                }
                let mut response = Response::new(Full::new(Bytes::from(page)));
                response.headers_mut().insert("content-type", "text/html; charset=utf-8".parse().expect("value"));
                response
            }
        }));
        PageServer { addr, page, reports }
    }

    /// The HTML served at `/` from now on.
    pub fn set_page(&self, html: String) {
        *self.page.lock().expect("page") = html;
    }

    /// Open `url` (a page of this server, by any host name that reaches
    /// it) in headless Chromium and wait for the page's first report.
    pub fn open(&self, url: &str, timeout: Duration) -> serde_json::Value {
        let before = self.reports.lock().expect("reports").len();
        let profile = tempfile::tempdir().expect("browser profile");
        let browser = Browser(
            Command::new(chromium())
                .args(HEADLESS_ARGS)
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg(url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromium"),
        );
        let arrived = wait_until(timeout, || self.reports.lock().expect("reports").len() > before);
        drop(browser);
        assert!(arrived, "the page at {url} reported nothing within {timeout:?}");
        self.reports.lock().expect("reports")[before].clone()
    }
}

/// Kills the browser (and so its helper processes' parent) when dropped.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
