//! A minimal W3C WebDriver client driving Debian's `chromedriver` with
//! headless Chromium: for flows only a real browser proves (signing in on
//! a real login page, cookies a browser keeps or drops, redirects it
//! follows). Blocking, over the raw HTTP/1.1 client in [`crate::client`];
//! every failure panics with what the driver said.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{request, Response};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long page loads and scripts may take before the driver gives up;
/// below the raw client's 15-second read timeout, so the driver's own error
/// comes back rather than a socket timeout.
const COMMAND_TIMEOUT_MS: u64 = 10_000;

/// The driver binary: `PORTCULLIS_CHROMEDRIVER`, else `chromedriver` on the
/// PATH (Debian's `chromium-driver` package puts it in `/usr/bin`).
pub fn chromedriver() -> PathBuf {
    if let Some(path) = std::env::var_os("PORTCULLIS_CHROMEDRIVER") {
        return PathBuf::from(path);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("chromedriver");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "chromedriver is needed for the browser sign-in tests: apt-get install chromium-driver \
         (or set PORTCULLIS_CHROMEDRIVER)"
    );
}

/// A chromedriver process with one headless Chromium session; both end
/// when this is dropped.
pub struct WebDriver {
    driver: Child,
    addr: SocketAddr,
    session: String,
    /// Chromium's profile and chromedriver's log.
    dir: tempfile::TempDir,
}

/// An element of the current page.
pub struct Element<'a> {
    driver: &'a WebDriver,
    id: String,
}

impl WebDriver {
    /// Start chromedriver on a free loopback port and open a session.
    pub fn start() -> WebDriver {
        let dir = tempfile::tempdir().expect("browser profile directory");
        let log = dir.path().join("chromedriver.log");
        let profile = dir.path().join("profile");
        // chromedriver cannot report a port it picked itself; a free port can
        // be taken in between, so try a few.
        for _ in 0..3 {
            let port = crate::free_port();
            let mut driver = Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver().display()));
            let addr = crate::loopback(port);
            let ready = crate::wait_until(Duration::from_secs(10), || {
                let status = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
                crate::client::send_raw(addr, status.as_bytes()).is_ok_and(|r| {
                    r.status == 200
                        && serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["value"]["ready"] == true)
                })
            });
            if !ready {
                // Probably lost the port; the next try gets a new one.
                let _ = driver.kill();
                let _ = driver.wait();
                continue;
            }
            let mut webdriver = WebDriver { driver, addr, session: String::new(), dir };
            webdriver.open_session(&profile);
            return webdriver;
        }
        panic!("chromedriver did not become ready (log: {})", std::fs::read_to_string(&log).unwrap_or_default());
    }

    fn open_session(&mut self, profile: &std::path::Path) {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": {
                        "binary": crate::browser::chromium(),
                        "args": crate::browser::HEADLESS_ARGS
                            .iter()
                            .map(|a| a.to_string())
                            .chain([format!("--user-data-dir={}", profile.display())])
                            .collect::<Vec<_>>(),
                    },
                    "timeouts": { "pageLoad": COMMAND_TIMEOUT_MS, "script": COMMAND_TIMEOUT_MS, "implicit": 0 },
                }
            }
        });
        let response = self.send("POST", "/session", Some(&capabilities));
        let value = self.value_of("POST /session", response);
        self.session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in the new session answer: {value}"))
            .to_owned();
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let body = body.map(Value::to_string).unwrap_or_default();
        let headers: &[(&str, &str)] =
            if method == "POST" { &[("Content-Type", "application/json; charset=utf-8")] } else { &[] };
        request(self.addr, method, path, headers, body.as_bytes())
    }

    /// The `value` of a successful answer; panics with the driver's error
    /// (and its log) otherwise.
    fn value_of(&self, what: &str, response: Response) -> Value {
        let mut answer: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!("WebDriver {what}: answer is not JSON ({e}): {} {}", response.status, response.text())
        });
        if response.status != 200 {
            let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
            let tail: String =
                log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!(
                "WebDriver {what} failed ({}): {}: {}\nchromedriver log (tail):\n{tail}",
                response.status,
                answer["value"]["error"].as_str().unwrap_or("?"),
                answer["value"]["message"].as_str().unwrap_or(&response.text()),
            );
        }
        answer["value"].take()
    }

    /// A command of this session (`path` is below `/session/{id}`).
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let what = format!("{method} {path}");
        // WebDriver wants a JSON body on every POST, `{}` when there is none.
        let empty = json!({});
        let body = if method == "POST" { Some(body.unwrap_or(&empty)) } else { body };
        let response = self.send(method, &format!("/session/{}{path}", self.session), body);
        self.value_of(&what, response)
    }

    /// Navigate to `url` and wait for the page to load (after redirects).
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.command("GET", "/url", None).as_str().expect("URL is a string").to_owned()
    }

    pub fn title(&self) -> String {
        self.command("GET", "/title", None).as_str().expect("title is a string").to_owned()
    }

    /// The current page's HTML as the browser now has it.
    pub fn page_source(&self) -> String {
        self.command("GET", "/source", None).as_str().expect("page source is a string").to_owned()
    }

    pub fn refresh(&self) {
        self.command("POST", "/refresh", None);
    }

    pub fn back(&self) {
        self.command("POST", "/back", None);
    }

    /// The first element matching `css`; panics if there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element matches {css:?} on {}:\n{}", self.current_url(), self.page_source()))
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let response = self.send("POST", &format!("/session/{}/element", self.session), Some(&body));
        if response.status == 404 {
            let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            if answer["value"]["error"] == "no such element" {
                return None;
            }
        }
        let value = self.value_of(&format!("find {css:?}"), response);
        Some(self.element(&value))
    }

    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self.command("POST", "/elements", Some(&body));
        value.as_array().expect("elements are an array").iter().map(|v| self.element(v)).collect()
    }

    fn element(&self, reference: &Value) -> Element<'_> {
        let id = reference[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("not an element reference: {reference}"));
        Element { driver: self, id: id.to_owned() }
    }

    /// Poll until an element matches `css`; panics with the page after
    /// `timeout`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.try_find(css) {
                return element;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element matched {css:?} within {timeout:?}; at {}:\n{}",
                    self.current_url(),
                    self.page_source()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll until the current URL satisfies `predicate`, and return it;
    /// panics with the last URL and page after `timeout`.
    pub fn wait_for_url(&self, mut predicate: impl FnMut(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url();
            if predicate(&url) {
                return url;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the browser did not reach the expected URL within {timeout:?}; at {url}:\n{}",
                    self.page_source()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cookies visible to the current page (HttpOnly ones included), as
    /// WebDriver cookie objects (`name`, `value`, `path`, `domain`,
    /// `httpOnly`, `secure`, `sameSite`, `expiry`).
    pub fn cookies(&self) -> Vec<Value> {
        self.command("GET", "/cookie", None).as_array().expect("cookies are an array").clone()
    }

    /// The current page's cookie `name`, if set.
    pub fn cookie(&self, name: &str) -> Option<Value> {
        self.cookies().into_iter().find(|c| c["name"] == name)
    }

    /// Delete every cookie visible to the current page.
    pub fn delete_cookies(&self) {
        self.command("DELETE", "/cookie", None);
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) in the
    /// page and return what it returns.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.command("POST", "/execute/sync", Some(&json!({ "script": script, "args": args })))
    }

    /// Like [`WebDriver::execute`], but the script calls
    /// `arguments[arguments.length - 1](result)` when done (a `fetch`, say).
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Value {
        self.command("POST", "/execute/async", Some(&json!({ "script": script, "args": args })))
    }
}

impl Element<'_> {
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.driver.command(method, &format!("/element/{}{path}", self.id), body)
    }

    /// Type `text` into the element.
    pub fn send_keys(&self, text: &str) {
        self.command("POST", "/value", Some(&json!({ "text": text })));
    }

    pub fn clear(&self) {
        self.command("POST", "/clear", None);
    }

    /// Click it (and wait for a navigation the click starts).
    pub fn click(&self) {
        self.command("POST", "/click", None);
    }

    /// Its rendered text.
    pub fn text(&self) -> String {
        self.command("GET", "/text", None).as_str().unwrap_or_default().to_owned()
    }

    /// An attribute, as written in the HTML.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.command("GET", &format!("/attribute/{name}"), None).as_str().map(str::to_owned)
    }

    /// A DOM property (`value` of an input, say).
    pub fn property(&self, name: &str) -> Value {
        self.command("GET", &format!("/property/{name}"), None)
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium; killing
        // chromedriver alone would leave the browser running.
        if !self.session.is_empty() {
            let _ = crate::client::send_raw(
                self.addr,
                format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.session,
                    self.addr.port()
                )
                .as_bytes(),
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
