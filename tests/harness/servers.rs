//! In-test HTTP servers (hyper): a recording upstream and a controllable
//! JWKS / OIDC discovery endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::runtime;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The request target's path and query.
    pub target: String,
    /// The request line carried an absolute-form target (`http://host/...`).
    pub absolute_form: bool,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// How the upstream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with a JSON echo.
    Echo,
    /// Wait this long before answering.
    Delay(Duration),
}

/// A real HTTP/1.1 server that records every request and echoes it.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Upstream {
    pub fn start(name: &'static str) -> Upstream {
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour::Echo));
        let listener = runtime().block_on(TcpListener::bind("127.0.0.1:0")).expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let (log, mode) = (Arc::clone(&received), Arc::clone(&behaviour));
        runtime().spawn(serve(listener, move |request: Request<Incoming>| {
            let (log, mode) = (Arc::clone(&log), Arc::clone(&mode));
            async move {
                let method = request.method().to_string();
                let target = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
                let absolute_form = request.uri().authority().is_some();
                // `X-Test-Response-Header: name: value` puts that header on
                // the answer (an upstream with CORS headers of its own).
                let extra = request
                    .headers()
                    .get_all("x-test-response-header")
                    .iter()
                    .filter_map(|v| {
                        v.to_str().ok()?.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                    })
                    .collect::<Vec<_>>();
                let headers =
                    request.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
                let body = request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                let record = Received { method: method.clone(), target: target.clone(), absolute_form, headers, body };
                log.lock().expect("upstream log").push(record);
                let behaviour = *mode.lock().expect("upstream mode");
                if let Behaviour::Delay(delay) = behaviour {
                    tokio::time::sleep(delay).await;
                }
                let body = serde_json::json!({ "upstream": name, "method": method, "target": target });
                let mut response = json_response(StatusCode::OK, body.to_string());
                for (name, value) in extra {
                    if let (Ok(name), Ok(value)) =
                        (http::HeaderName::try_from(name), http::HeaderValue::try_from(value))
                    {
                        response.headers_mut().append(name, value);
                    }
                }
                response
            }
        }));
        Upstream { addr, name, received, behaviour }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("upstream mode") = behaviour;
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("upstream log").clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("upstream log").len()
    }

    /// The last request received; panics if none.
    pub fn last(&self) -> Received {
        self.received().last().cloned().expect("the upstream received no request")
    }

    pub fn clear(&self) {
        self.received.lock().expect("upstream log").clear();
    }
}

/// What the key server does when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyServerMode {
    Serve,
    /// Answer every request with this status.
    Fail(u16),
    /// Never answer.
    Hang,
    /// Answer 200 with a body that is not a JWKS.
    Garbage,
}

struct KeyServerState {
    jwks: String,
    mode: KeyServerMode,
    max_age: Option<u64>,
    introspection: Option<String>,
    /// Opaque tokens `/introspect` calls active, with their claims.
    active_tokens: Vec<(String, serde_json::Value)>,
}

/// Serves `/.well-known/openid-configuration`, `/jwks` and an RFC 7662
/// `/introspect` for an issuer whose URL is the server's own address;
/// counts requests.
pub struct KeyServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<KeyServerState>>,
    jwks_hits: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
    introspection_hits: Arc<AtomicUsize>,
}

impl KeyServer {
    pub fn start(jwks: String) -> KeyServer {
        let listener = runtime().block_on(TcpListener::bind("127.0.0.1:0")).expect("bind key server");
        KeyServer::on(listener, jwks)
    }

    /// On a specific port (to start it after the proxy, for outage tests).
    pub fn start_on(port: u16, jwks: String) -> KeyServer {
        let listener = runtime().block_on(TcpListener::bind(("127.0.0.1", port))).expect("bind key server port");
        KeyServer::on(listener, jwks)
    }

    fn on(listener: TcpListener, jwks: String) -> KeyServer {
        let addr = listener.local_addr().expect("key server address");
        let state = Arc::new(Mutex::new(KeyServerState {
            jwks,
            mode: KeyServerMode::Serve,
            max_age: None,
            introspection: Some(format!("http://{addr}/introspect")),
            active_tokens: Vec::new(),
        }));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let discovery_hits = Arc::new(AtomicUsize::new(0));
        let introspection_hits = Arc::new(AtomicUsize::new(0));
        let (st, jh, dh, ih) =
            (Arc::clone(&state), Arc::clone(&jwks_hits), Arc::clone(&discovery_hits), Arc::clone(&introspection_hits));
        let issuer = format!("http://{addr}");
        runtime().spawn(serve(listener, move |request: Request<Incoming>| {
            let (st, jh, dh, ih, issuer) =
                (Arc::clone(&st), Arc::clone(&jh), Arc::clone(&dh), Arc::clone(&ih), issuer.clone());
            async move {
                let path = request.uri().path().to_owned();
                match path.as_str() {
                    "/jwks" => jh.fetch_add(1, Ordering::SeqCst),
                    "/.well-known/openid-configuration" => dh.fetch_add(1, Ordering::SeqCst),
                    "/introspect" => ih.fetch_add(1, Ordering::SeqCst),
                    _ => 0,
                };
                if path == "/introspect" {
                    let body = request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let token =
                        body.split('&').find_map(|pair| pair.strip_prefix("token=")).unwrap_or_default().to_owned();
                    let answer = st
                        .lock()
                        .expect("key server state")
                        .active_tokens
                        .iter()
                        .find(|(t, _)| *t == token)
                        .map(|(_, claims)| claims.clone())
                        .unwrap_or_else(|| serde_json::json!({ "active": false }));
                    return json_response(StatusCode::OK, answer.to_string());
                }
                let (mode, jwks, max_age, introspection) = {
                    let s = st.lock().expect("key server state");
                    (s.mode, s.jwks.clone(), s.max_age, s.introspection.clone())
                };
                match mode {
                    KeyServerMode::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return json_response(StatusCode::OK, String::new());
                    }
                    KeyServerMode::Fail(status) => {
                        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        return json_response(status, r#"{"error":"down"}"#.to_owned());
                    }
                    KeyServerMode::Garbage => return json_response(StatusCode::OK, "{not json".to_owned()),
                    KeyServerMode::Serve => {}
                }
                match path.as_str() {
                    "/.well-known/openid-configuration" => {
                        let mut document =
                            serde_json::json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") });
                        if let Some(endpoint) = introspection {
                            document["introspection_endpoint"] = endpoint.into();
                        }
                        json_response(StatusCode::OK, document.to_string())
                    }
                    "/jwks" => {
                        let mut response = json_response(StatusCode::OK, jwks);
                        if let Some(age) = max_age {
                            response
                                .headers_mut()
                                .insert("cache-control", format!("max-age={age}").parse().expect("header value"));
                        }
                        response
                    }
                    _ => json_response(StatusCode::NOT_FOUND, "{}".to_owned()),
                }
            }
        }));
        KeyServer { addr, state, jwks_hits, discovery_hits, introspection_hits }
    }

    /// The issuer URL this server is the discovery endpoint of.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn set_jwks(&self, jwks: String) {
        self.state.lock().expect("key server state").jwks = jwks;
    }

    pub fn set_mode(&self, mode: KeyServerMode) {
        self.state.lock().expect("key server state").mode = mode;
    }

    pub fn set_max_age(&self, seconds: Option<u64>) {
        self.state.lock().expect("key server state").max_age = seconds;
    }

    /// Make `/introspect` call `token` active with `claims` (plus `active: true`).
    pub fn activate(&self, token: &str, mut claims: serde_json::Value) {
        claims["active"] = true.into();
        self.state.lock().expect("key server state").active_tokens.push((token.to_owned(), claims));
    }

    pub fn introspection_hits(&self) -> usize {
        self.introspection_hits.load(Ordering::SeqCst)
    }

    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().expect("header value"));
    response
}

pub(crate) async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
