//! File types → runtime model, collecting every problem with its position.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use policy::{Access, HostPattern, HostSet, IssuerId, Method, MethodSet, PathPattern, Requirement, RouteSpec};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Position, Reporter, Severity};
use crate::duration::parse_duration;
use crate::file::{
    ConfigFile, IntrospectionFile, IssuerFile, OrderedMap, RateLimitFile, RouteFile, Text, UpstreamFile,
};
use crate::model::{
    Algorithm, ClaimPath, Config, HeaderValueSource, IdentityHeader, Introspection, Issuer, KeySource, LogFormat,
    LogSettings, RateKey, RateLimit, Secret, TokenCacheSettings, TokenSettings, Upstream,
};
use crate::Mode;

pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_REALM: &str = "portcullis";
const DEFAULT_MAX_TOKEN_BYTES: u64 = 8 * 1024;
const MAX_MAX_TOKEN_BYTES: u64 = 64 * 1024;
const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 100_000;
const DEFAULT_RATE_LIMIT_KEYS: u64 = 100_000;

/// Headers that may not be used as identity headers: the proxy or HTTP
/// itself owns them.
const RESERVED_HEADERS: [&str; 12] = [
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

/// Reads secrets; the environment in production, a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the main file declares that routes refer to, by name. `None` marks a
/// declaration that was itself invalid (already reported): routes naming it
/// fail without a second, misleading "unknown name" error.
pub(crate) struct Names {
    upstreams: HashMap<String, Option<usize>>,
    issuers: HashMap<String, Option<usize>>,
    rate_limits: HashMap<String, Option<usize>>,
}

/// Map each declared name to its index among the entries that validated.
fn resolve<T>(declared: Vec<String>, built: &[T], name: impl Fn(&T) -> &str) -> HashMap<String, Option<usize>> {
    declared
        .into_iter()
        .map(|declared| {
            let index = built.iter().position(|b| name(b) == declared);
            (declared, index)
        })
        .collect()
}

/// Look a name up; `Err(true)` when unknown, `Err(false)` when declared but invalid.
fn lookup(map: &HashMap<String, Option<usize>>, name: &str) -> Result<usize, bool> {
    match map.get(name) {
        Some(Some(index)) => Ok(*index),
        Some(None) => Err(false),
        None => Err(true),
    }
}

/// The main file, validated, with what still needs resolving.
pub(crate) struct MainFile {
    pub config: Config,
    pub routes: Vec<Spanned<RouteFile>>,
    pub policy_globs: Vec<Text>,
    pub issuer_positions: Vec<serde_saphyr::Location>,
    pub names: Names,
}

pub(crate) struct Validator<'a> {
    pub mode: Mode,
    pub env: EnvLookup<'a>,
}

impl Validator<'_> {
    /// Validate the main file. Routes, in this file and in policy files, are
    /// validated afterwards against the result (they refer to its names).
    pub fn main_file(&self, file: ConfigFile, r: &mut Reporter<'_>) -> MainFile {
        let listen = match &file.listen {
            Some(text) => socket_addr(text, r),
            None => DEFAULT_LISTEN.parse().ok(),
        };
        let admin_listen = file.admin_listen.as_ref().and_then(|text| socket_addr(text, r));
        let realm = match &file.realm {
            Some(text) if !is_quotable(&text.value) => {
                r.error(text, "realm must be printable ASCII without '\"' or '\\' (it is sent in WWW-Authenticate)");
                String::new()
            }
            Some(text) => text.value.clone(),
            None => DEFAULT_REALM.to_owned(),
        };
        let trusted_proxies = file.trusted_proxies.iter().flatten().filter_map(|text| cidr(text, r)).collect();
        let threads = match &file.threads {
            Some(n) if n.value == 0 || n.value > 1024 => {
                r.error(n, "threads must be between 1 and 1024");
                1
            }
            Some(n) => n.value as usize,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let log = LogSettings {
            level: match &file.log_level {
                Some(text) => {
                    one_of(text, &["trace", "debug", "info", "warn", "error"], r).unwrap_or("info").to_owned()
                }
                None => "info".to_owned(),
            },
            format: match file.log_format.as_ref().and_then(|t| one_of(t, &["human", "json"], r)) {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Human,
            },
        };

        let declared_upstreams = file.upstreams.iter().flat_map(|m| m.0.iter().map(|(k, _)| k.value.clone())).collect();
        let upstreams = self.upstreams(file.upstreams, r);
        let issuer_files = file.issuers.unwrap_or_default();
        let issuer_positions = issuer_files.iter().map(|i| i.referenced).collect();
        let declared_issuers = issuer_files.iter().map(|i| i.value.name.value.clone()).collect();
        let issuers = self.issuers(issuer_files, r);
        let identity_headers = identity_headers(file.identity_headers, r);
        let declared_limits = file.rate_limits.iter().flat_map(|m| m.0.iter().map(|(k, _)| k.value.clone())).collect();
        let rate_limits = rate_limits(file.rate_limits, r);
        let names = Names {
            upstreams: resolve(declared_upstreams, &upstreams, |u| &u.name),
            issuers: resolve(declared_issuers, &issuers, |i| &i.name),
            rate_limits: resolve(declared_limits, &rate_limits, |l| &l.name),
        };
        let tokens = self.tokens(&file.tokens, r);
        let token_cache = token_cache(&file.token_cache, r);
        let shutdown_grace = file
            .shutdown
            .as_ref()
            .and_then(|s| s.value.grace_period.as_ref())
            .and_then(|text| duration(text, r))
            .unwrap_or(Duration::from_secs(30));
        let policy_globs = file.policy_files.unwrap_or_default();
        let config = Config {
            // An invalid address was reported; the placeholder never serves.
            listen: listen.unwrap_or_else(|| ([0, 0, 0, 0], 8080).into()),
            admin_listen,
            realm,
            trusted_proxies,
            threads,
            log,
            upstreams,
            issuers,
            identity_headers,
            rate_limits,
            tokens,
            token_cache,
            shutdown_grace,
            routes: Vec::new(),
            route_origins: Vec::new(),
            sources: vec![r.file.to_path_buf()],
            policy_globs: Vec::new(),
        };
        MainFile { config, routes: file.routes.unwrap_or_default(), policy_globs, issuer_positions, names }
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
            out.push(Upstream { name: name.value, tls, host, port, sni, connect_timeout, read_timeout });
        }
        out
    }

    fn issuers(&self, file: Vec<Spanned<IssuerFile>>, r: &mut Reporter<'_>) -> Vec<Issuer> {
        let mut seen = HashSet::new();
        let mut seen_iss: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for entry in file {
            let location = entry.referenced;
            let issuer = entry.value;
            if !is_name(&issuer.name.value) {
                r.error(&issuer.name, "issuer name must be letters, digits, '-' or '_'");
            } else if !seen.insert(issuer.name.value.clone()) {
                r.error(&issuer.name, format!("issuer '{}' is defined twice", issuer.name.value));
            }
            // Tokens are matched to an issuer by their `iss`: it must be unique.
            match seen_iss.get(&issuer.issuer.value) {
                Some(other) => r.error(
                    &issuer.issuer,
                    format!(
                        "issuer '{}' has the same 'issuer' as '{other}'; tokens could not be told apart",
                        issuer.name.value
                    ),
                ),
                None => {
                    seen_iss.insert(issuer.issuer.value.clone(), issuer.name.value.clone());
                }
            }
            if let Some(built) = self.issuer(issuer, location, r) {
                out.push(built);
            }
        }
        out
    }

    fn issuer(&self, file: IssuerFile, location: serde_saphyr::Location, r: &mut Reporter<'_>) -> Option<Issuer> {
        let errors_before = count_errors(r);
        if file.issuer.value.is_empty() {
            r.error(&file.issuer, "issuer must not be empty (it is compared with the token's 'iss')");
        }
        let algorithms = algorithms(file.algorithms.as_deref(), file.secret_env.is_some(), location, r);
        let hmac = algorithms.first().is_some_and(|a| a.is_hmac());

        let keys = if hmac {
            if let Some(uri) = &file.jwks_uri {
                r.error(uri, "an HMAC issuer verifies with its secret; remove jwks_uri or use public-key algorithms");
            }
            match &file.secret_env {
                None => {
                    r.error_at(
                        location,
                        "HMAC algorithms need secret_env: the name of the variable holding the secret",
                    );
                    None
                }
                Some(env) => Some(self.hmac_secret(env, &algorithms, r)),
            }
        } else {
            if let Some(env) = &file.secret_env {
                r.error(env, "secret_env is only for HMAC algorithms (HS256/384/512); public-key issuers use a JWKS");
            }
            match &file.jwks_uri {
                Some(uri) => http_url(uri, "jwks_uri", r).map(|uri| KeySource::Jwks { uri }),
                None => {
                    http_url(&file.issuer, "issuer (used for OIDC discovery)", r).map(|issuer| KeySource::Discovery {
                        url: format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
                    })
                }
            }
        };

        let any_audience = file.allow_any_audience.as_ref().is_some_and(|b| b.value);
        let audiences: Vec<String> = file.audiences.iter().flatten().map(|a| a.value.clone()).collect();
        match (&file.audiences, any_audience) {
            (Some(list), true) if !list.is_empty() => {
                r.error(&list[0], "audiences and allow_any_audience: true contradict each other; keep one")
            }
            (_, false) if audiences.is_empty() => r.error_at(
                location,
                format!(
                    "issuer '{}' has no audiences: list the 'aud' values this proxy accepts, \
                     or set allow_any_audience: true to skip the check deliberately",
                    file.name.value
                ),
            ),
            _ => {}
        }
        if let Some(empty) = file.audiences.iter().flatten().find(|a| a.value.is_empty()) {
            r.error(empty, "an audience must not be empty");
        }

        let leeway = file.leeway.as_ref().and_then(|t| duration(t, r)).unwrap_or(Duration::from_secs(30));
        if leeway > Duration::from_secs(300) {
            if let Some(text) = &file.leeway {
                r.error(text, "leeway above 5m defeats the expiry check; clocks are not that far apart");
            }
        }
        let scope_claims = match &file.scope_claims {
            Some(list) => list.iter().filter_map(|t| claim_path(t, r)).collect(),
            None => vec![ClaimPath(vec!["scope".into()]), ClaimPath(vec!["scp".into()])],
        };
        let token_types = file.token_types.iter().flatten().map(|t| t.value.to_ascii_lowercase()).collect();
        let jwks_refresh =
            file.jwks_refresh.as_ref().and_then(|t| positive_duration(t, r)).unwrap_or(Duration::from_secs(600));
        let min_refresh_interval =
            file.min_refresh_interval.as_ref().and_then(|t| duration(t, r)).unwrap_or(Duration::from_secs(30));
        let http_timeout =
            file.http_timeout.as_ref().and_then(|t| positive_duration(t, r)).unwrap_or(Duration::from_secs(5));
        let introspection = file.introspection.as_ref().and_then(|i| self.introspection(i, &keys, r));

        if count_errors(r) > errors_before {
            return None;
        }
        Some(Issuer {
            name: file.name.value,
            issuer: file.issuer.value,
            keys: keys?,
            audiences,
            any_audience,
            algorithms,
            leeway,
            scope_claims,
            token_types,
            jwks_refresh,
            min_refresh_interval,
            http_timeout,
            introspection,
        })
    }

    fn hmac_secret(&self, env: &Text, algorithms: &[Algorithm], r: &mut Reporter<'_>) -> KeySource {
        let secret = self.secret(env, r);
        // RFC 7518 3.2: the key must be at least as long as the hash output.
        let needed = algorithms
            .iter()
            .map(|a| match a {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            })
            .max()
            .unwrap_or(32);
        if let Some(secret) = &secret {
            if secret.expose().len() < needed {
                r.error(
                    env,
                    format!(
                        "the secret in {} is {} bytes; {} needs at least {needed} (RFC 7518 section 3.2)",
                        env.value,
                        secret.expose().len(),
                        algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join("/"),
                    ),
                );
            }
        }
        KeySource::Secret { env: env.value.clone(), secret }
    }

    /// Read a secret from the environment; never echo its value.
    fn secret(&self, env: &Text, r: &mut Reporter<'_>) -> Option<Secret> {
        if !is_env_name(&env.value) {
            r.error(env, format!("'{}' is not an environment variable name", env.value));
            return None;
        }
        match (self.env)(&env.value) {
            Some(value) if !value.is_empty() => Some(Secret::new(value.into_bytes())),
            _ => {
                let message = format!("environment variable {} is not set (or empty)", env.value);
                match self.mode {
                    Mode::Serve => r.error(env, message),
                    Mode::Check => r.warn(env, message),
                }
                None
            }
        }
    }

    fn introspection(
        &self,
        file: &Spanned<IntrospectionFile>,
        keys: &Option<KeySource>,
        r: &mut Reporter<'_>,
    ) -> Option<Introspection> {
        let i = &file.value;
        let endpoint = match &i.endpoint {
            Some(text) => http_url(text, "introspection endpoint", r),
            None => {
                if !matches!(keys, Some(KeySource::Discovery { .. })) {
                    r.error(file, "introspection needs an endpoint, or an issuer using OIDC discovery to find it");
                }
                None
            }
        };
        let client_id = match (&i.client_id, &i.client_id_env) {
            (Some(id), None) => id.value.clone(),
            (None, Some(env)) => self.secret(env, r).map(|s| String::from_utf8_lossy(s.expose()).into_owned())?,
            _ => {
                r.error(file, "introspection needs exactly one of client_id or client_id_env");
                return None;
            }
        };
        let client_secret = self.secret(&i.client_secret_env, r);
        let max_ttl = i.max_ttl.as_ref().and_then(|t| duration(t, r)).unwrap_or(Duration::from_secs(300));
        let negative_ttl = i.negative_ttl.as_ref().and_then(|t| duration(t, r)).unwrap_or(Duration::from_secs(10));
        let max_entries = bounded(i.max_entries.as_ref(), 10_000, 1, 10_000_000, "max_entries", r);
        let max_calls_per_second =
            bounded(i.max_calls_per_second.as_ref(), 50, 1, 100_000, "max_calls_per_second", r) as u32;
        Some(Introspection {
            endpoint,
            client_id,
            client_secret,
            client_secret_env: i.client_secret_env.value.clone(),
            max_ttl,
            negative_ttl,
            max_entries,
            max_calls_per_second,
        })
    }

    fn tokens(&self, file: &Option<Spanned<crate::file::TokensFile>>, r: &mut Reporter<'_>) -> TokenSettings {
        let file = file.as_ref().map(|f| &f.value);
        let max_bytes = bounded(
            file.and_then(|f| f.max_bytes.as_ref()),
            DEFAULT_MAX_TOKEN_BYTES,
            64,
            MAX_MAX_TOKEN_BYTES,
            "max_bytes",
            r,
        );
        let query_parameter = file.and_then(|f| f.query_parameter.as_ref()).and_then(|text| {
            if text.value.is_empty() || !text.value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                r.error(text, "query_parameter must be a plain parameter name such as access_token");
                None
            } else {
                Some(text.value.clone())
            }
        });
        TokenSettings { max_bytes, query_parameter }
    }
}

/// Validate routes from one file, resolving names against the main file,
/// and append them to `config` with their positions.
pub(crate) fn add_routes(config: &mut Config, names: &Names, routes: Vec<Spanned<RouteFile>>, r: &mut Reporter<'_>) {
    for route in routes {
        let position = Position::new(r.file, route.referenced);
        if let Some(spec) = route_spec(route, config, names, r) {
            config.routes.push(spec);
            config.route_origins.push(position);
        }
    }
}

fn route_spec(entry: Spanned<RouteFile>, config: &Config, names: &Names, r: &mut Reporter<'_>) -> Option<RouteSpec> {
    let errors_before = count_errors(r);
    // Set when the route names something that was itself invalid.
    let mut failed = false;
    let location = entry.referenced;
    let route = entry.value;
    let pattern = match PathPattern::parse(&route.path.value) {
        Ok(pattern) => Some(pattern),
        Err(e) => {
            r.error(&route.path, format!("invalid path pattern '{}': {e}", route.path.value));
            None
        }
    };
    let methods = match &route.methods {
        None => MethodSet::Any,
        Some(list) if list.is_empty() => {
            r.error_at(location, "methods: [] matches nothing; omit it to match every method");
            MethodSet::Any
        }
        Some(list) => MethodSet::Only(list.iter().filter_map(|m| method(m, r)).collect()),
    };
    let hosts = HostSet(route.hosts.iter().flatten().filter_map(|h| host_pattern(h, r)).collect());

    let upstream = match &route.upstream {
        Some(name) => match lookup(&names.upstreams, &name.value) {
            Ok(index) => Some(index),
            Err(unknown) => {
                if unknown {
                    r.error(name, format!("unknown upstream '{}'{}", name.value, known(names.upstreams.keys())));
                }
                failed = true;
                None
            }
        },
        None if names.upstreams.len() == 1 => names.upstreams.values().next().copied().flatten(),
        None if names.upstreams.is_empty() => {
            r.error_at(location, "no upstreams are configured; add one under 'upstreams'");
            None
        }
        None => {
            r.error_at(location, "several upstreams are configured; name this route's 'upstream'");
            None
        }
    };

    let public = route.public.as_ref().is_some_and(|p| p.value);
    let access = if public {
        for (field, present) in [
            ("scopes", route.scopes.is_some()),
            ("any_scopes", route.any_scopes.is_some()),
            ("issuers", route.issuers.is_some()),
        ] {
            if present {
                r.error_at(location, format!("a public route cannot also have {field}"));
            }
        }
        Access::Public
    } else {
        let issuers = route.issuers.as_ref().map(|list| {
            list.iter()
                .filter_map(|name| match lookup(&names.issuers, &name.value) {
                    Ok(index) => Some(IssuerId(index)),
                    Err(unknown) => {
                        if unknown {
                            r.error(name, format!("unknown issuer '{}'{}", name.value, known(names.issuers.keys())));
                        }
                        failed = true;
                        None
                    }
                })
                .collect()
        });
        if names.issuers.is_empty() {
            r.error_at(location, "this route needs a token but no issuers are configured; add one or make it public");
        }
        Access::Protected(Requirement {
            all_scopes: scopes(route.scopes.as_deref(), r),
            any_scopes: scopes(route.any_scopes.as_deref(), r),
            issuers,
        })
    };
    if route.any_scopes.as_ref().is_some_and(Vec::is_empty) {
        r.error_at(location, "any_scopes: [] can never be satisfied; omit it instead");
    }

    let mut rate_limits = Vec::new();
    if let Some(limits) = &route.rate_limit {
        for name in &limits.value.0 {
            match lookup(&names.rate_limits, name) {
                Ok(index) => {
                    if public && config.rate_limits[index].key == RateKey::Subject {
                        r.error(
                            limits,
                            format!("rate limit '{name}' is keyed by subject, which a public route never has"),
                        );
                    }
                    rate_limits.push(index);
                }
                Err(true) => r.error(limits, format!("unknown rate limit '{name}'{}", known(names.rate_limits.keys()))),
                Err(false) => failed = true,
            }
        }
    }

    let name = match &route.name {
        Some(name) if name.value.trim().is_empty() => {
            r.error(name, "route name must not be empty");
            String::new()
        }
        Some(name) => name.value.clone(),
        None => match &methods {
            MethodSet::Any => route.path.value.clone(),
            MethodSet::Only(ms) => {
                format!("{} {}", ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","), route.path.value)
            }
        },
    };
    if failed || count_errors(r) > errors_before {
        return None;
    }
    Some(RouteSpec { name, pattern: pattern?, methods, hosts, access, upstream: upstream?, rate_limits })
}

fn scopes(list: Option<&[Text]>, r: &mut Reporter<'_>) -> Vec<Box<str>> {
    list.unwrap_or_default()
        .iter()
        .filter_map(|s| {
            // RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E.
            let valid = !s.value.is_empty()
                && s.value.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if valid {
                Some(s.value.as_str().into())
            } else {
                r.error(s, format!("'{}' is not a valid scope (no spaces, quotes or backslashes)", s.value));
                None
            }
        })
        .collect()
}

fn method(text: &Text, r: &mut Reporter<'_>) -> Option<Method> {
    let name = &text.value;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        r.error(text, format!("'{name}' is not an HTTP method"));
        return None;
    }
    if name.bytes().any(|b| b.is_ascii_lowercase()) {
        r.error(
            text,
            format!("methods are case-sensitive in HTTP; write '{}' instead of '{name}'", name.to_ascii_uppercase()),
        );
        return None;
    }
    Some(Method::new(name))
}

fn host_pattern(text: &Text, r: &mut Reporter<'_>) -> Option<HostPattern> {
    let name = text.value.strip_prefix("*.").unwrap_or(&text.value);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        r.error(text, format!("'{}' is not a host name or '*.domain' pattern (no ports)", text.value));
        return None;
    }
    Some(HostPattern::new(&text.value))
}

fn algorithms(
    list: Option<&[Text]>,
    has_secret: bool,
    location: serde_saphyr::Location,
    r: &mut Reporter<'_>,
) -> Vec<Algorithm> {
    let Some(list) = list else {
        return vec![if has_secret { Algorithm::HS256 } else { Algorithm::RS256 }];
    };
    if list.is_empty() {
        r.error_at(location, "algorithms: [] accepts no token; list the algorithms this issuer signs with");
    }
    let mut out: Vec<Algorithm> = Vec::new();
    for text in list {
        if text.value.eq_ignore_ascii_case("none") {
            r.error(text, "'none' is never accepted: unsigned tokens prove nothing");
            continue;
        }
        match Algorithm::from_name(&text.value) {
            Some(alg) if out.contains(&alg) => r.warn(text, format!("{alg} is listed twice")),
            Some(alg) => out.push(alg),
            None => r.error(
                text,
                format!(
                    "unsupported algorithm '{}'; supported: {}",
                    text.value,
                    Algorithm::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
                ),
            ),
        }
    }
    let hmac = out.iter().filter(|a| a.is_hmac()).count();
    if hmac > 0 && hmac < out.len() {
        r.error(
            &list[0],
            "an issuer must not mix HMAC (HS*) and public-key algorithms: a token signed with HS256 \
             using the public key as secret would verify. Define two issuers instead",
        );
    }
    out
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

fn rate_limits(file: Option<OrderedMap<RateLimitFile>>, r: &mut Reporter<'_>) -> Vec<RateLimit> {
    let mut out = Vec::new();
    for (name, limit) in file.map(|m| m.0).unwrap_or_default() {
        if !is_name(&name.value) {
            r.error(&name, "rate limit name must be letters, digits, '-' or '_'");
        }
        let key = rate_key(&limit.key, r);
        let count = match limit.limit.value {
            0 => {
                r.error(&limit.limit, "limit must be at least 1");
                None
            }
            n => u32::try_from(n).ok().or_else(|| {
                r.error(&limit.limit, "limit is too large");
                None
            }),
        };
        let per = positive_duration(&limit.per, r);
        let burst = match &limit.burst {
            Some(b) if b.value == 0 || b.value > u64::from(u32::MAX) => {
                r.error(b, "burst must be at least 1");
                None
            }
            Some(b) => Some(b.value as u32),
            None => count,
        };
        let max_keys = bounded(limit.max_keys.as_ref(), DEFAULT_RATE_LIMIT_KEYS, 1, 100_000_000, "max_keys", r);
        let ipv6_prefix = match &limit.ipv6_prefix {
            Some(p) if p.value == 0 || p.value > 128 => {
                r.error(p, "ipv6_prefix must be between 1 and 128");
                64
            }
            Some(p) => p.value,
            None => 64,
        };
        if let (Some(key), Some(limit), Some(per), Some(burst)) = (key, count, per, burst) {
            out.push(RateLimit { name: name.value, key, limit, per, burst, max_keys, ipv6_prefix });
        }
    }
    out
}

fn rate_key(text: &Text, r: &mut Reporter<'_>) -> Option<RateKey> {
    let value = text.value.as_str();
    let key = match value.split_once(':') {
        None if value == "client_ip" => RateKey::ClientIp,
        None if value == "subject" => RateKey::Subject,
        Some(("header", name)) if !name.is_empty() && name.bytes().all(is_token_byte) => {
            RateKey::Header(name.to_ascii_lowercase())
        }
        Some(("form", field)) if !field.is_empty() => RateKey::FormField(field.to_owned()),
        _ => {
            r.error(
                text,
                format!("unknown rate-limit key '{value}'; use client_ip, subject, header:NAME or form:FIELD"),
            );
            return None;
        }
    };
    Some(key)
}

fn token_cache(file: &Option<Spanned<crate::file::TokenCacheFile>>, r: &mut Reporter<'_>) -> TokenCacheSettings {
    let file = file.as_ref().map(|f| &f.value);
    TokenCacheSettings {
        max_entries: bounded(
            file.and_then(|f| f.max_entries.as_ref()),
            DEFAULT_TOKEN_CACHE_ENTRIES,
            0,
            100_000_000,
            "max_entries",
            r,
        ),
        ttl: file.and_then(|f| f.ttl.as_ref()).and_then(|t| duration(t, r)).unwrap_or(Duration::from_secs(300)),
    }
}

fn claim_path(text: &Text, r: &mut Reporter<'_>) -> Option<ClaimPath> {
    let parts: Vec<String> = text.value.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        r.error(text, format!("'{}' is not a claim name or dotted claim path", text.value));
        return None;
    }
    Some(ClaimPath(parts))
}

fn upstream_url(text: &Text, r: &mut Reporter<'_>) -> Option<(bool, String, u16)> {
    let url = match url::Url::parse(&text.value) {
        Ok(url) => url,
        Err(e) => {
            r.error(text, format!("'{}' is not a URL: {e}", text.value));
            return None;
        }
    };
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            r.error(text, format!("upstream scheme must be http or https, not '{other}'"));
            return None;
        }
    };
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        r.error(text, "an upstream URL is scheme://host:port only; the request path is forwarded unchanged");
        return None;
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => addr.to_string(),
        Some(host) => host.to_string(),
        None => {
            r.error(text, "upstream URL has no host");
            return None;
        }
    };
    let port = url.port_or_known_default()?;
    Some((tls, host, port))
}

fn http_url(text: &Text, what: &str, r: &mut Reporter<'_>) -> Option<String> {
    match url::Url::parse(&text.value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                None => false,
            };
            if url.scheme() == "http" && !loopback {
                r.warn(text, format!("{what} uses plain http: keys fetched over it can be forged in transit"));
            }
            Some(text.value.clone())
        }
        _ => {
            r.error(text, format!("{what} must be an http(s) URL, got '{}'", text.value));
            None
        }
    }
}

fn socket_addr(text: &Text, r: &mut Reporter<'_>) -> Option<SocketAddr> {
    match text.value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            r.error(text, format!("'{}' is not an address:port such as 0.0.0.0:8080 or [::]:8080", text.value));
            None
        }
    }
}

fn cidr(text: &Text, r: &mut Reporter<'_>) -> Option<IpNet> {
    if let Ok(net) = text.value.parse::<IpNet>() {
        return Some(net.trunc());
    }
    if let Ok(addr) = text.value.parse::<IpAddr>() {
        return Some(IpNet::from(addr));
    }
    r.error(text, format!("'{}' is not an IP address or CIDR such as 10.0.0.0/8", text.value));
    None
}

fn duration(text: &Text, r: &mut Reporter<'_>) -> Option<Duration> {
    parse_duration(&text.value).map_err(|e| r.error(text, e)).ok()
}

fn positive_duration(text: &Text, r: &mut Reporter<'_>) -> Option<Duration> {
    match duration(text, r)? {
        Duration::ZERO => {
            r.error(text, "must be longer than zero");
            None
        }
        d => Some(d),
    }
}

fn bounded(value: Option<&Spanned<u64>>, default: u64, min: u64, max: u64, what: &str, r: &mut Reporter<'_>) -> usize {
    match value {
        None => default as usize,
        Some(v) if v.value < min || v.value > max => {
            r.error(v, format!("{what} must be between {min} and {max}"));
            default as usize
        }
        Some(v) => v.value as usize,
    }
}

fn one_of<'a>(text: &Text, allowed: &[&'a str], r: &mut Reporter<'_>) -> Option<&'a str> {
    let found = allowed.iter().find(|a| **a == text.value).copied();
    if found.is_none() {
        r.error(text, format!("'{}' is not one of: {}", text.value, allowed.join(", ")));
    }
    found
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        return " (none are defined)".to_owned();
    }
    names.sort_unstable();
    format!(" (defined: {})", names.join(", "))
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_env_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_quotable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// RFC 9110 token characters (header names, methods).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn count_errors(r: &Reporter<'_>) -> usize {
    r.out.iter().filter(|d| d.severity == Severity::Error).count()
}

/// Warnings about the configuration as a whole, once every route is in.
pub(crate) fn whole_config_warnings(config: &Config, issuer_positions: &[Position], out: &mut Vec<Diagnostic>) {
    let warn = |position: &Position, message: String| Diagnostic {
        severity: Severity::Warning,
        position: position.clone(),
        message,
    };
    if config.routes.is_empty() {
        let main = Position::file(&config.sources[0]);
        out.push(warn(&main, "there are no routes: every request will be denied".to_owned()));
    }
    let table = policy::RouteTable::new(config.routes.clone());
    for shadowed in table.shadowed() {
        let (route, by) = (&config.routes[shadowed.route], &config.routes[shadowed.by]);
        out.push(warn(
            &config.route_origins[shadowed.route],
            format!(
                "route '{}' can never match: route '{}' at {} comes first and covers every request it applies to",
                route.name, by.name, config.route_origins[shadowed.by]
            ),
        ));
    }
    for (index, issuer) in config.issuers.iter().enumerate() {
        let usable = config.routes.iter().any(|route| match &route.access {
            Access::Public => false,
            Access::Protected(req) => req.issuers.as_ref().is_none_or(|list| list.contains(&IssuerId(index))),
        });
        if !usable {
            out.push(warn(&issuer_positions[index], format!("issuer '{}' is not usable by any route", issuer.name)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bytes() {
        assert!(is_token_byte(b'A'));
        assert!(!is_token_byte(b' '));
        assert!(!is_token_byte(b':'));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("TODO_JWT_SECRET"));
        assert!(!is_env_name("1ABC"));
        assert!(!is_env_name("A-B"));
    }
}
