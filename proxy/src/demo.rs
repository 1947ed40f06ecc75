//! `portcullis demo`: the whole product on loopback, for trying it.
//!
//! Starts a demo OpenID issuer (an ES256 key generated at start, served as a
//! discovery document and JWKS over HTTP so the real discovery and JWKS code
//! runs), an echo upstream that shows what it receives, and the proxy with a
//! demo policy; then prints curl commands with freshly minted tokens that show
//! 200, 401, 403 and 429.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::server::{serve, Launch};

/// The demo audience and key id.
const AUDIENCE: &str = "todo-api";
const KID: &str = "demo-key-1";

/// A signing key generated for this run only.
pub(crate) struct DemoIssuer {
    pub issuer: String,
    pkcs8: Vec<u8>,
    jwks: String,
}

impl DemoIssuer {
    pub(crate) fn generate(issuer: String) -> anyhow::Result<DemoIssuer> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a demo key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("cannot load the demo key"))?;
        // Uncompressed point: 0x04 || X || Y.
        let point = pair.public_key().as_ref();
        anyhow::ensure!(point.len() == 65, "unexpected public key encoding");
        let jwks = serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
        .to_string();
        Ok(DemoIssuer { issuer, pkcs8: pkcs8.as_ref().to_vec(), jwks })
    }

    /// A token for `subject` with `scopes`, valid for an hour.
    pub(crate) fn mint(&self, subject: &str, scopes: &str) -> anyhow::Result<String> {
        let now = crate::idp::unix_now();
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": subject, "aud": AUDIENCE, "scope": scopes,
            "iat": now, "nbf": now, "exp": now + 3600,
            "email": format!("{subject}@demo.example"),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        jsonwebtoken::encode(&header, &claims, &key).context("signing a demo token")
    }

    fn discovery(&self) -> String {
        serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/jwks", self.issuer),
            "id_token_signing_alg_values_supported": ["ES256"],
        })
        .to_string()
    }
}

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
    audiences: ["{AUDIENCE}"]
    algorithms: ["ES256"]
    min_refresh_interval: 1s

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
    let issuer = Arc::new(DemoIssuer::generate(format!("http://127.0.0.1:{issuer_port}"))?);
    let issuer_listener = demo_runtime
        .block_on(TcpListener::bind(("127.0.0.1", issuer_port)))
        .with_context(|| format!("demo issuer port {issuer_port}"))?;
    let upstream_listener = demo_runtime
        .block_on(TcpListener::bind(("127.0.0.1", upstream_port)))
        .with_context(|| format!("demo upstream port {upstream_port}"))?;
    let served = Arc::clone(&issuer);
    demo_runtime.spawn(serve_http(issuer_listener, move |request| issuer_response(&served, &request)));
    demo_runtime.spawn(serve_http(upstream_listener, |request| echo_response(&request)));

    let text = demo_config(port, &issuer.issuer, upstream_port, admin_port);
    let no_env = |_: &str| None;
    let loaded = config::load_str(Path::new("<demo>"), &text, config::Mode::Serve, &no_env)
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
async fn serve_http<F>(listener: TcpListener, respond: F)
where
    F: Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + Clone + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let respond = respond.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn issuer_response(issuer: &DemoIssuer, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/.well-known/openid-configuration" => json(StatusCode::OK, issuer.discovery()),
        "/jwks" => json(StatusCode::OK, issuer.jwks.clone()),
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.to_owned()),
    }
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
