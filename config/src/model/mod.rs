//! The runtime model: the buffer between the file formats operators write
//! and what the proxy runs on. Everything here is validated, typed and
//! defaulted; nothing refers back to YAML.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use policy::cors::CorsPolicy;
use policy::RouteSpec;

use crate::diag::Position;

mod assertion;
mod issuer;
mod sessions;
mod shared;
mod tls;
pub use assertion::*;
pub use issuer::*;
pub use sessions::*;
pub use shared::*;
pub use tls::*;

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// HTTP/2 with prior knowledge (h2c) accepted on `listen`, besides
    /// HTTP/1.1 (told apart by the connection preface).
    pub h2c: bool,
    /// TLS on `listen`, when configured.
    pub tls: Option<TlsSettings>,
    /// The signed identity assertion towards upstreams, when configured.
    pub upstream_assertion: Option<AssertionSettings>,
    pub admin_listen: Option<SocketAddr>,
    pub realm: String,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub threads: usize,
    pub log: LogSettings,
    pub upstreams: Vec<Upstream>,
    pub issuers: Vec<Issuer>,
    pub identity_headers: Vec<IdentityHeader>,
    pub rate_limits: Vec<RateLimit>,
    pub tokens: TokenSettings,
    pub token_cache: TokenCacheSettings,
    pub shutdown_grace: Duration,
    /// Routes in priority order: the main file's, then each policy file's.
    pub routes: Vec<RouteSpec>,
    /// Where each route was defined, for `check`, `explain` and logs.
    pub route_origins: Vec<Position>,
    /// Every claim a route condition looks at, once; conditions refer to
    /// them by index ([`policy::ClaimId`]). Verified identities keep the
    /// values of exactly these claims.
    pub condition_claims: Vec<ClaimPath>,
    /// Every file this configuration was read from, main file first.
    pub sources: Vec<PathBuf>,
    /// The `policy_files` and `api_keys.files` globs, made absolute (a new
    /// matching file must trigger a reload too).
    pub policy_globs: Vec<String>,
    /// API keys, when `api_keys` is configured (with no key files matched
    /// yet, the list is empty).
    pub api_keys: Option<ApiKeys>,
    /// The credential kinds each route accepts (same index as `routes`).
    pub route_credentials: Vec<CredentialKinds>,
    /// The client certificates each route requires (same index as
    /// `routes`; `None`: no certificate needed).
    pub route_client_certs: Vec<Option<RouteCertificates>>,
    /// The override headers each route lets through (same index as
    /// `routes`, names from [`METHOD_OVERRIDE_HEADERS`] and
    /// [`URL_OVERRIDE_HEADERS`]); the policy then decides on the overridden
    /// method or path.
    pub route_overrides: Vec<Vec<&'static str>>,
    /// The main file's CORS policy: for routes without their own and for
    /// requests no route matches.
    pub cors: Option<Arc<CorsPolicy>>,
    /// Each route's CORS policy (same index as `routes`): its own, or the
    /// main file's; `None`: the proxy does not handle CORS there.
    pub route_cors: Vec<Option<Arc<CorsPolicy>>>,
    /// Redis, for state shared by replicas; `None`: every replica alone.
    pub redis: Option<RedisSettings>,
    pub revocation: RevocationSettings,
    /// Bearer secret of the admin listener's write endpoints; `None`: they
    /// are refused.
    pub admin_token: Option<Secret>,
    /// Browser sign-in, when `sessions:` is configured.
    pub sessions: Option<SessionSettings>,
    /// Routes (same index as `routes`) where a browser navigation without a
    /// session is sent to sign in rather than answered 401.
    pub route_browser_login: Vec<bool>,
}

/// Route requirements name API key issuers by ids from here on, far from
/// any configured token issuer's index.
pub const KEY_ISSUER_BASE: usize = usize::MAX / 2;

/// The route-requirement id of the API key issuer at `index` in
/// [`ApiKeys::issuers`].
pub fn key_issuer(index: usize) -> policy::IssuerId {
    policy::IssuerId(KEY_ISSUER_BASE + index)
}

/// Headers that make common upstream frameworks (Symfony, Laravel, Rails,
/// Express `method-override`, ASP.NET, Spring) run another method than the
/// request line's. Removed from every request unless a route allows one.
pub const METHOD_OVERRIDE_HEADERS: [&str; 4] =
    ["x-http-method-override", "x-http-method", "x-method-override", "x-original-method"];

/// Headers that make upstream frameworks or servers (Symfony, IIS URL
/// Rewrite, nginx `auth_request` conventions, Envoy) route by another path
/// than the request line's. Removed unless a route allows one.
pub const URL_OVERRIDE_HEADERS: [&str; 4] =
    ["x-original-url", "x-rewrite-url", "x-original-uri", "x-envoy-original-path"];

/// `api_keys`: where keys are presented and the keys the key files hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeys {
    /// Lower-case name of the operator's header (`X-API-Key`); keys are
    /// also accepted as `Authorization: ApiKey <key>`.
    pub header: Option<String>,
    /// `api_keys.issuers`: the names keys may carry as their issuer; the
    /// name at index `i` is [`key_issuer`]`(i)` in route requirements.
    pub issuers: Vec<String>,
    /// Every valid key entry, in file order; ids are unique.
    pub keys: Vec<ApiKey>,
}

/// One key file entry. The key itself is never in a file: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The id the key carries in clear (`pk_<id>_<secret>`).
    pub id: String,
    /// SHA-256 of the whole key as presented.
    pub sha256: [u8; 32],
    pub subject: String,
    pub scopes: Vec<String>,
    /// Unix time (seconds) from which the key is refused.
    pub expires: Option<u64>,
    pub note: Option<String>,
    /// Index into [`ApiKeys::issuers`].
    pub issuer: Option<usize>,
    /// Where the entry is, for `check` and logs.
    pub position: Position,
}

/// A kind of credential a route can accept (`credentials:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A bearer token: a JWT or an introspected opaque token.
    Bearer,
    /// An API key from `api_keys`.
    ApiKey,
    /// A browser session cookie (`sessions:`).
    Session,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 3] = [CredentialKind::Bearer, CredentialKind::ApiKey, CredentialKind::Session];

    /// The name in `credentials:`.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Bearer => "bearer",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Session => "session",
        }
    }
}

/// The credential kinds a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialKinds {
    pub bearer: bool,
    pub api_key: bool,
    pub session: bool,
}

impl CredentialKinds {
    /// Every kind (an unmatched path, or tools that do not ask).
    pub const ANY: CredentialKinds = CredentialKinds { bearer: true, api_key: true, session: true };
    pub const NONE: CredentialKinds = CredentialKinds { bearer: false, api_key: false, session: false };

    pub fn accepts(self, kind: CredentialKind) -> bool {
        match kind {
            CredentialKind::Bearer => self.bearer,
            CredentialKind::ApiKey => self.api_key,
            CredentialKind::Session => self.session,
        }
    }

    /// The kinds accepted, as written in `credentials:`.
    pub fn names(self) -> Vec<&'static str> {
        CredentialKind::ALL.into_iter().filter(|k| self.accepts(*k)).map(CredentialKind::name).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing` filter directive: `info`, `debug`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Server name for TLS and the `Host` header is left as the client sent it.
    pub sni: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// HTTP/2 to the upstream: h2c with prior knowledge for `http://`,
    /// ALPN `h2` only for `https://`.
    pub http2: bool,
    /// TLS towards an `https://` upstream.
    pub upstream_tls: UpstreamTls,
    /// The forwarding headers portcullis sets from what it saw (client
    /// address, host, scheme), in addition to removing every client-sent
    /// forwarding header when the peer is not a trusted proxy.
    pub forwarded_headers: Vec<ForwardedHeader>,
}

/// A forwarding header portcullis can vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    XForwardedFor,
    XForwardedHost,
    XForwardedProto,
    XRealIp,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

impl ForwardedHeader {
    pub const ALL: [ForwardedHeader; 5] = [
        ForwardedHeader::XForwardedFor,
        ForwardedHeader::XForwardedHost,
        ForwardedHeader::XForwardedProto,
        ForwardedHeader::XRealIp,
        ForwardedHeader::Forwarded,
    ];
    /// Set when an upstream does not say: every one but `Forwarded`.
    pub const DEFAULT: [ForwardedHeader; 4] = [
        ForwardedHeader::XForwardedFor,
        ForwardedHeader::XForwardedHost,
        ForwardedHeader::XForwardedProto,
        ForwardedHeader::XRealIp,
    ];

    /// The header name, lower case, as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::XForwardedHost => "x-forwarded-host",
            ForwardedHeader::XForwardedProto => "x-forwarded-proto",
            ForwardedHeader::XRealIp => "x-real-ip",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

impl Upstream {
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A claim, possibly nested: `realm_access.roles` is `["realm_access", "roles"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath(pub Vec<String>);

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// What an identity header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValueSource {
    /// The verified scope set, space-joined.
    Scopes,
    Claim(ClaimPath),
    /// A fact of the connection's verified client certificate
    /// (`client_cert:subject` …), not of the token.
    ClientCert(CertField),
}

/// What a client-certificate identity header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertField {
    /// The subject, RFC 4514.
    Subject,
    /// The first URI SAN (a SPIFFE ID).
    Uri,
    /// The first DNS SAN.
    Dns,
    /// SHA-256 fingerprint, lower-case hex.
    Sha256,
}

impl CertField {
    pub const ALL: [(&'static str, CertField); 4] = [
        ("subject", CertField::Subject),
        ("uri", CertField::Uri),
        ("dns", CertField::Dns),
        ("sha256", CertField::Sha256),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// Lower-case header name.
    pub name: String,
    pub source: HeaderValueSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// The client address (see `trusted_proxies`).
    ClientIp,
    /// A request header's value (lower-case name).
    Header(String),
    /// The verified subject.
    Subject,
    /// A field of a form or JSON login body.
    FormField(String),
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateKey::ClientIp => f.write_str("client_ip"),
            RateKey::Header(name) => write!(f, "header:{name}"),
            RateKey::Subject => f.write_str("subject"),
            RateKey::FormField(name) => write!(f, "form:{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub name: String,
    pub key: RateKey,
    /// Requests allowed per `per`, refilled evenly (GCRA).
    pub limit: u32,
    pub per: Duration,
    pub burst: u32,
    /// Hard cap on keys tracked at once.
    pub max_keys: usize,
    /// IPv6 clients are keyed by this prefix length.
    pub ipv6_prefix: u8,
    pub store: LimitStore,
}

/// Where a limit's state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitStore {
    /// This process (each replica counts alone).
    Local,
    /// Redis, shared by every replica; `on_error` when it fails.
    Redis { on_error: StoreErrorPolicy },
}

/// What a Redis-backed limit does when Redis fails or is too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorPolicy {
    /// This replica's local limiter decides.
    Local,
    /// Let the request through.
    Allow,
    /// Refuse it (503).
    Deny,
}

impl StoreErrorPolicy {
    pub fn name(self) -> &'static str {
        match self {
            StoreErrorPolicy::Local => "local",
            StoreErrorPolicy::Allow => "allow",
            StoreErrorPolicy::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub max_bytes: usize,
    pub query_parameter: Option<String>,
    /// Per client address (as `client_ip` keys it): invalid bearer tokens
    /// allowed before verifications are refused with 429 (`None`: off).
    pub failed_auth_budget: Option<RateLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCacheSettings {
    pub max_entries: usize,
    pub ttl: Duration,
}
