//! `portcullis demo`: the whole product on loopback, for trying it.
//!
//! Starts a demo OpenID issuer (`issuer`: an ES256 key generated at start,
//! discovery and JWKS served over HTTP so the real discovery and JWKS code
//! runs, and a one-click sign-in page for browsers), an echo upstream that
//! shows what it receives, and the proxy with a demo policy; then prints
//! curl commands with freshly minted tokens that show 200, 401, 403 and
//! 429, and a URL to open in a browser for the sign-in flow.

mod issuer;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::server::{serve, Launch};
use issuer::{DemoIssuer, CLIENT_ID};

/// The demo configuration: real YAML, validated like any other.
pub(crate) fn demo_config(proxy: u16, issuer: &str, upstream: u16, admin: u16) -> String {
    format!(
        r#"listen: "127.0.0.1:{proxy}"
admin_listen: "127.0.0.1:{admin}"
realm: "portcullis-demo"
threads: 2
log_level: info

upstreams:
  echo:
    url: "http://127.0.0.1:{upstream}"

issuers:
  - name: demo
    issuer: "{issuer}"
    audiences: ["todo-api"]
    algorithms: ["ES256"]
    min_refresh_interval: 1s

# Browser sign-in at the demo issuer's one-click page.
sessions:
  issuer: demo
  public_url: "http://127.0.0.1:{proxy}"
  client_id: {CLIENT_ID}
  client_secret_env: DEMO_CLIENT_SECRET
  scopes: [openid, email]
  cookie:
    key_env: DEMO_SESSION_KEYS

identity_headers:
  X-Auth-Subject: sub
  X-Auth-Issuer: iss
  X-Auth-Scopes: scopes
  X-Auth-Email: email

rate_limits:
  login:
    key: client_ip
    limit: 5
    per: 1m
    burst: 5

routes:
  - path: /healthz
    public: true
  - path: /auth/**
    public: true
    rate_limit: login
  - path: /todos/**
    methods: [GET, HEAD]
    scopes: [tasks:read]
  - path: /todos/**
    methods: [POST, PUT, PATCH, DELETE]
    scopes: [tasks:write]
  - path: /admin/**
    any_scopes: [admin, superuser]
  - path: /app/**
    browser_login: true
    scopes: [tasks:read]
"#
    )
}

pub fn run(port: u16) -> anyhow::Result<()> {
    let (issuer_port, upstream_port, admin_port) = (
        port.checked_add(1).context("port too high")?,
        port.checked_add(2).context("port too high")?,
        port.checked_add(3).context("port too high")?,
    );
    // The demo's own servers run on their own runtime, listening before
    // the proxy starts so its first JWKS fetch succeeds.
    let demo_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-demo")
        .enable_all()
        .build()?;
    // Secrets of this run only, handed to the configuration as if they
    // came from the environment.
    let client_secret = random_base64()?;
    let session_key = random_base64()?;
    let issuer = Arc::new(DemoIssuer::generate(
        format!("http://127.0.0.1:{issuer_port}"),
        format!("http://127.0.0.1:{port}"),
        client_secret.clone(),
    )?);
    let issuer_listener = demo_runtime
        .block_on(TcpListener::bind(("127.0.0.1", issuer_port)))
        .with_context(|| format!("demo issuer port {issuer_port}"))?;
    let upstream_listener = demo_runtime
        .block_on(TcpListener::bind(("127.0.0.1", upstream_port)))
        .with_context(|| format!("demo upstream port {upstream_port}"))?;
    let served = Arc::clone(&issuer);
    demo_runtime.spawn(serve_http(issuer_listener, move |request| {
        let issuer = Arc::clone(&served);
        async move { issuer.respond(request).await }
    }));
    demo_runtime.spawn(serve_http(upstream_listener, |request| async move { echo_response(&request) }));

    let text = demo_config(port, &issuer.issuer, upstream_port, admin_port);
    let env = move |name: &str| match name {
        "DEMO_CLIENT_SECRET" => Some(client_secret.clone()),
        "DEMO_SESSION_KEYS" => Some(session_key.clone()),
        _ => None,
    };
    let loaded = config::load_str(Path::new("<demo>"), &text, config::Mode::Serve, &env)
        .map_err(|e| anyhow::anyhow!("the demo configuration is invalid:\n{e}"))?;
    crate::logging::init(&loaded.config.log);

    let tokens = Tokens {
        reader: issuer.mint("alice", "tasks:read")?,
        writer: issuer.mint("bob", "tasks:read tasks:write")?,
        admin: issuer.mint("carol", "admin")?,
    };
    let banner = instructions(port, admin_port, &tokens);
    let result = serve(Launch {
        config: loaded.config,
        config_path: None,
        on_ready: Some(Box::new(move || {
            // Invite curl only once the proxy really accepts connections.
            std::thread::spawn(move || {
                if wait_for_listener(port, LISTENER_WAIT) {
                    println!("{banner}");
                } else {
                    eprintln!("the demo proxy did not start listening on 127.0.0.1:{port}");
                }
            });
        })),
    });
    drop(demo_runtime);
    result
}

/// 32 random bytes, base64 (a session key, a client secret).
fn random_base64() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness for the demo's secrets"))?;
    Ok(STANDARD.encode(bytes))
}

/// How long the banner waits for the proxy's listener.
const LISTENER_WAIT: Duration = Duration::from_secs(30);

/// Whether 127.0.0.1:`port` accepts a connection within `timeout`.
fn wait_for_listener(port: u16, timeout: Duration) -> bool {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

struct Tokens {
    reader: String,
    writer: String,
    admin: String,
}

fn instructions(port: u16, admin: u16, t: &Tokens) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let tampered = format!("{}x", &t.reader[..t.reader.len() - 1]);
    format!(
        r#"
================================================================================
 portcullis DEMO — for trying the product only. NOT FOR PRODUCTION:
 the issuer's key is generated at start and thrown away at exit.
================================================================================
 proxy    {base}
 issuer   http://127.0.0.1:{issuer}  (discovery + JWKS, ES256)
 upstream http://127.0.0.1:{upstream}  (echoes what it receives)
 admin    http://127.0.0.1:{admin}/metrics  /healthz  /readyz

 Tokens (valid for one hour):
   READ='{reader}'
   WRITE='{writer}'
   ADMIN='{adminv}'

 200, token with tasks:read (see the X-Auth-* headers the upstream got):
   curl -i -H "Authorization: Bearer $READ" {base}/todos/42
 401, no token:
   curl -i {base}/todos/42
 401 invalid_token, tampered signature:
   curl -i -H "Authorization: Bearer {tampered}" {base}/todos/42
 403 insufficient_scope, reading is not writing:
   curl -i -X POST -H "Authorization: Bearer $READ" {base}/todos
 200, the writer may:
   curl -i -X POST -H "Authorization: Bearer $WRITE" {base}/todos
 403, /admin wants admin or superuser:
   curl -i -H "Authorization: Bearer $WRITE" {base}/admin/users
 429 after 5 logins a minute (Retry-After tells when):
   for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w "%{{http_code}}\n" -X POST {base}/auth/login; done
 Spoofed identity headers never reach the upstream:
   curl -s -H "X-Auth-Subject: root" {base}/auth/whoami
 400, path tricks are refused:
   curl -i --path-as-is {base}/todos/../admin
 Metrics:
   curl -s http://127.0.0.1:{admin}/metrics | grep portcullis_requests_total

 Browser sign-in: open {base}/app/ in a browser, pick a user on the
 issuer's page, and land back on /app/ signed in (alice and bob may read,
 the upstream shows the X-Auth-* headers it got). Sign out:
   {base}/.portcullis/logout

 Stop with Ctrl-C.
================================================================================
"#,
        issuer = port + 1,
        upstream = port + 2,
        reader = t.reader,
        writer = t.writer,
        adminv = t.admin,
    )
}

/// Serve HTTP/1.1 with `respond` until the runtime ends.
async fn serve_http<F, Fut>(listener: TcpListener, respond: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let respond = respond.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

pub(super) fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// What the upstream saw: method, path and the headers that matter.
fn echo_response(request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str() != "authorization")
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.into())))
        .collect();
    let body = serde_json::json!({
        "upstream": "portcullis demo echo",
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "headers": headers,
    });
    json(StatusCode::OK, format!("{body:#}\n"))
}
