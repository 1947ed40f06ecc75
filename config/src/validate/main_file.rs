//! The main file: its top-level settings, the upstreams and identity headers
//! it declares, and the order in which every section is checked (file order,
//! so diagnostics come out in the order an operator reads them).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use super::api_keys::api_keys;
use super::assertion::assertion;
use super::cors::cors;
use super::limits::{rate_limits, token_cache, tokens};
use super::redis::revocation;
use super::sessions::SessionContext;
use super::tls::tls;
use super::values::{cidr, claim_path, is_name, is_quotable, is_token_byte, one_of, positive_duration};
use super::values::{duration, socket_addr, upstream_url};
use super::{resolve, Names, Validator};
use crate::diag::{Position, Positioned, Reporter};
use crate::file::{ConfigFile, OrderedMap, RouteFile, ShutdownFile, Text, UpstreamFile};
use crate::model::{
    CertField, CertificateFiles, Config, ForwardedHeader, HeaderValueSource, IdentityHeader, Issuer, LogFormat,
    LogSettings, Upstream, UpstreamTls,
};

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_REALM: &str = "portcullis";

/// Headers that may not be used as identity headers: the proxy or HTTP
/// itself owns them.
pub(super) const RESERVED_HEADERS: [&str; 12] = [
    "authorization",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "cookie",
];

/// The main file, validated, with what still needs resolving.
pub(crate) struct MainFile {
    /// Everything but the routes (added from every file afterwards) and the
    /// issuers, which wait in `issuers` with their positions until
    /// `validate::finish` has used those for warnings.
    pub config: Config,
    pub issuers: Vec<Positioned<Issuer>>,
    pub routes: Vec<Spanned<RouteFile>>,
    pub policy_globs: Vec<Text>,
    /// The `api_keys.files` globs.
    pub key_globs: Vec<Text>,
    pub names: Names,
}

/// The top-level scalars of the main file, validated.
struct Settings {
    listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
    realm: String,
    trusted_proxies: Vec<IpNet>,
    threads: usize,
    log: LogSettings,
}

impl Validator<'_> {
    /// Validate the main file. Routes, in this file and in policy files, are
    /// validated afterwards against the result (they refer to its names).
    pub(crate) fn main_file(&self, file: ConfigFile, r: &mut Reporter<'_>) -> MainFile {
        let settings = settings(&file, r);
        let declared_upstreams = declared(file.upstreams.as_ref());
        let upstreams = self.upstreams(file.upstreams, r);
        let issuer_files = file.issuers.unwrap_or_default();
        let declared_issuers: Vec<String> = issuer_files.iter().map(|i| i.value.name.value.clone()).collect();
        let issuers = self.issuers(issuer_files, r);
        let identity_headers = identity_headers(file.identity_headers, r);
        let base = r.file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let redis = self.redis(file.redis.as_ref(), &base, r);
        let revocation = revocation(file.revocation.as_ref(), r);
        let admin_token = self.admin_token(file.admin_token_env.as_ref(), r);
        let declared_limits = declared(file.rate_limits.as_ref());
        let rate_limits = rate_limits(file.rate_limits, file.redis.is_some(), r);
        let (api_keys, key_globs) = api_keys(file.api_keys, &identity_headers, &declared_issuers, r);
        let cors = file.cors.as_ref().and_then(|section| {
            if section.value.allow_origins.is_empty() {
                r.warn(section, "cors.allow_origins is empty, so CORS is off; omit 'cors' instead");
            }
            cors(section, r)
        });
        let key_issuers = api_keys.as_ref().map(|k| k.issuers.clone()).unwrap_or_default();
        let issuer_names = resolve(declared_issuers, &issuers, |i| &i.value.name);
        let context = SessionContext {
            issuers: &issuer_names,
            valid_issuers: &issuers,
            redis: file.redis.is_some(),
            base: &base,
        };
        let sessions = self.sessions(file.sessions.as_ref(), &context, r);
        let (tls, tls_files) = tls(file.tls.as_ref(), &base, r).unzip();
        let names = Names {
            api_keys: api_keys.is_some(),
            sessions: file.sessions.is_some(),
            client_ca: file.tls.as_ref().is_some_and(|t| t.value.client_ca.is_some()),
            key_issuers: key_issuers.into_iter().enumerate().map(|(i, name)| (name, i)).collect(),
            upstreams: resolve(declared_upstreams, &upstreams, |u| &u.name),
            issuers: issuer_names,
            rate_limits: resolve(declared_limits, &rate_limits, |l| &l.name),
        };
        let config = Config {
            listen: settings.listen,
            h2c: file.h2c.as_ref().is_some_and(|flag| flag.value),
            tls,
            upstream_assertion: assertion(file.upstream_assertion.as_ref(), &base, r),
            admin_listen: settings.admin_listen,
            realm: settings.realm,
            trusted_proxies: settings.trusted_proxies,
            threads: settings.threads,
            log: settings.log,
            upstreams,
            issuers: Vec::new(),
            identity_headers,
            rate_limits,
            tokens: tokens(&file.tokens, r),
            token_cache: token_cache(&file.token_cache, r),
            shutdown_grace: shutdown_grace(file.shutdown.as_ref(), r),
            routes: Vec::new(),
            route_origins: Vec::new(),
            condition_claims: Vec::new(),
            // Certificate and key files are watched like policy files: a
            // renewal is applied by a reload.
            sources: std::iter::once(r.file.to_path_buf()).chain(tls_files.into_iter().flatten()).collect(),
            policy_globs: Vec::new(),
            api_keys,
            route_credentials: Vec::new(),
            route_client_certs: Vec::new(),
            route_overrides: Vec::new(),
            cors,
            route_cors: Vec::new(),
            redis,
            revocation,
            admin_token,
            sessions,
            route_browser_login: Vec::new(),
        };
        let (routes, policy_globs) = (file.routes.unwrap_or_default(), file.policy_files.unwrap_or_default());
        MainFile { config, issuers, routes, policy_globs, key_globs, names }
    }

    fn upstreams(&self, file: Option<OrderedMap<UpstreamFile>>, r: &mut Reporter<'_>) -> Vec<Upstream> {
        let mut out = Vec::new();
        for (name, upstream) in file.map(|m| m.0).unwrap_or_default() {
            if !is_name(&name.value) {
                r.error(&name, format!("upstream name '{}' must be letters, digits, '-' or '_'", name.value));
            }
            let Some((tls, host, port)) = upstream_url(&upstream.url, r) else { continue };
            let connect_timeout = upstream
                .connect_timeout
                .as_ref()
                .and_then(|t| positive_duration(t, r))
                .unwrap_or(Duration::from_secs(5));
            let read_timeout =
                upstream.read_timeout.as_ref().and_then(|t| positive_duration(t, r)).unwrap_or(Duration::from_secs(60));
            let sni = upstream.sni.as_ref().map_or_else(|| host.clone(), |s| s.value.clone());
            let forwarded_headers = forwarded_headers(upstream.forwarded_headers.as_deref(), r);
            let http2 = upstream.http2.as_ref().is_some_and(|flag| flag.value);
            let upstream_tls = upstream_tls(&upstream, tls, r);
            out.push(Upstream {
                name: name.value,
                tls,
                host,
                port,
                sni,
                connect_timeout,
                read_timeout,
                http2,
                upstream_tls,
                forwarded_headers,
            });
        }
        out
    }
}

/// `ca_file`, `client_cert`/`client_key`, `tls_verify`: only for
/// `https://` upstreams; files relative to the main file.
fn upstream_tls(upstream: &UpstreamFile, tls: bool, r: &mut Reporter<'_>) -> UpstreamTls {
    let base = r.file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let named = [
        ("ca_file", upstream.ca_file.is_some()),
        ("client_cert", upstream.client_cert.is_some()),
        ("client_key", upstream.client_key.is_some()),
        ("tls_verify", upstream.tls_verify.is_some()),
    ];
    if !tls {
        for (field, present) in named {
            if present {
                r.error(&upstream.url, format!("{field} is only for https:// upstreams"));
            }
        }
        return UpstreamTls { verify: true, ..UpstreamTls::default() };
    }
    let file = |text: &Text, r: &mut Reporter<'_>| {
        let path = base.join(&text.value);
        if std::fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
            Some(path)
        } else {
            r.error(text, format!("cannot read {}", path.display()));
            None
        }
    };
    let ca_file = upstream.ca_file.as_ref().and_then(|text| file(text, r));
    let client_certificate = match (&upstream.client_cert, &upstream.client_key) {
        (Some(cert), Some(key)) => match (file(cert, r), file(key, r)) {
            (Some(cert_path), Some(key_path)) => Some(CertificateFiles {
                cert: cert_path,
                key: key_path,
                position: Position::new(r.file, cert.referenced),
            }),
            _ => None,
        },
        (None, None) => None,
        (Some(text), None) | (None, Some(text)) => {
            r.error(text, "client_cert and client_key go together");
            None
        }
    };
    let verify = upstream.tls_verify.as_ref().is_none_or(|flag| flag.value);
    if let Some(flag) = upstream.tls_verify.as_ref().filter(|flag| !flag.value) {
        r.warn(
            flag,
            "tls_verify: false: the upstream's certificate is not checked, so anyone on the path can impersonate it",
        );
    }
    UpstreamTls { ca_file, client_certificate, verify }
}

/// An upstream's `forwarded_headers` (names any case), or the default set.
fn forwarded_headers(names: Option<&[Text]>, r: &mut Reporter<'_>) -> Vec<ForwardedHeader> {
    let Some(names) = names else { return ForwardedHeader::DEFAULT.to_vec() };
    let mut out: Vec<ForwardedHeader> = Vec::new();
    for text in names {
        match ForwardedHeader::ALL.into_iter().find(|h| h.name().eq_ignore_ascii_case(&text.value)) {
            Some(header) if out.contains(&header) => r.error(text, format!("'{}' is listed twice", text.value)),
            Some(header) => out.push(header),
            None => {
                let known: Vec<&str> = ForwardedHeader::ALL.iter().map(|h| h.name()).collect();
                r.error(text, format!("'{}' is not one of: {}", text.value, known.join(", ")));
            }
        }
    }
    out
}

/// Every name a mapping declares, valid or not (see `Names`).
fn declared<V>(map: Option<&OrderedMap<V>>) -> Vec<String> {
    map.iter().flat_map(|m| m.0.iter().map(|(k, _)| k.value.clone())).collect()
}

fn settings(file: &ConfigFile, r: &mut Reporter<'_>) -> Settings {
    let listen = match &file.listen {
        Some(text) => socket_addr(text, r),
        None => DEFAULT_LISTEN.parse().ok(),
    };
    Settings {
        // An invalid address was reported; the placeholder never serves.
        listen: listen.unwrap_or_else(|| ([0, 0, 0, 0], 8080).into()),
        admin_listen: file.admin_listen.as_ref().and_then(|text| socket_addr(text, r)),
        realm: realm(file.realm.as_ref(), r),
        trusted_proxies: file.trusted_proxies.iter().flatten().filter_map(|text| cidr(text, r)).collect(),
        threads: threads(file.threads.as_ref(), r),
        log: log_settings(file, r),
    }
}

fn realm(text: Option<&Text>, r: &mut Reporter<'_>) -> String {
    match text {
        Some(text) if !is_quotable(&text.value) => {
            r.error(text, "realm must be printable ASCII without '\"' or '\\' (it is sent in WWW-Authenticate)");
            String::new()
        }
        Some(text) => text.value.clone(),
        None => DEFAULT_REALM.to_owned(),
    }
}

fn threads(n: Option<&Spanned<u64>>, r: &mut Reporter<'_>) -> usize {
    match n {
        Some(n) if n.value == 0 || n.value > 1024 => {
            r.error(n, "threads must be between 1 and 1024");
            1
        }
        Some(n) => n.value as usize,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    }
}

fn log_settings(file: &ConfigFile, r: &mut Reporter<'_>) -> LogSettings {
    let level = match &file.log_level {
        Some(text) => one_of(text, &["trace", "debug", "info", "warn", "error"], r).unwrap_or("info").to_owned(),
        None => "info".to_owned(),
    };
    let format = match file.log_format.as_ref().and_then(|t| one_of(t, &["human", "json"], r)) {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Human,
    };
    LogSettings { level, format }
}

fn shutdown_grace(file: Option<&Spanned<ShutdownFile>>, r: &mut Reporter<'_>) -> Duration {
    file.and_then(|s| s.value.grace_period.as_ref())
        .and_then(|text| duration(text, r))
        .unwrap_or(Duration::from_secs(30))
}

fn identity_headers(file: Option<OrderedMap<Text>>, r: &mut Reporter<'_>) -> Vec<IdentityHeader> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (name, claim) in file.map(|m| m.0).unwrap_or_default() {
        let lower = name.value.to_ascii_lowercase();
        if lower.is_empty() || !lower.bytes().all(is_token_byte) {
            r.error(&name, format!("'{}' is not a valid header name", name.value));
            continue;
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            r.error(&name, format!("'{}' cannot be an identity header", name.value));
            continue;
        }
        if !seen.insert(lower.clone()) {
            r.error(&name, format!("identity header '{}' is listed twice (names are case-insensitive)", name.value));
            continue;
        }
        let source = if claim.value == "scopes" {
            HeaderValueSource::Scopes
        } else if let Some(field) = claim.value.strip_prefix("client_cert:") {
            match CertField::ALL.iter().find(|(name, _)| *name == field) {
                Some((_, field)) => HeaderValueSource::ClientCert(*field),
                None => {
                    r.error(
                        &claim,
                        format!("'{}': client_cert: is followed by subject, uri, dns or sha256", claim.value),
                    );
                    continue;
                }
            }
        } else {
            match claim_path(&claim, r) {
                Some(path) => HeaderValueSource::Claim(path),
                None => continue,
            }
        };
        out.push(IdentityHeader { name: lower, source });
    }
    out
}
