//! Routes, from the main file and from policy files: what they match, where
//! they go, and who may pass. Names they use are resolved against what the
//! main file declared (`Names`).

use std::collections::HashMap;

use policy::{
    parse_fingerprint, Access, CertificateRule, DistinguishedName, HostPattern, HostSet, IssuerId, Method, MethodSet,
    PathPattern, Requirement, RouteSpec, UriPattern,
};
use serde_saphyr::{Location, Spanned};

use super::claims::claim_conditions;
use super::cors::cors;
use super::values::is_token_byte;
use super::{count_errors, known, Names};
use crate::diag::{Position, Positioned, Reporter};
use crate::file::{ClientCertsFile, RouteFile, Text};
use crate::model::{
    key_issuer, ClaimPath, Config, CredentialKind, CredentialKinds, RateKey, RouteCertificates,
    METHOD_OVERRIDE_HEADERS, URL_OVERRIDE_HEADERS,
};

/// Validate routes from one file, resolving names against the main file,
/// and append them to `config` with their positions.
pub(crate) fn add_routes(config: &mut Config, names: &Names, routes: Vec<Spanned<RouteFile>>, r: &mut Reporter<'_>) {
    let mut claims = std::mem::take(&mut config.condition_claims);
    for route in routes {
        let overrides = allowed_overrides(&route.value, r);
        // A route's own `cors:` replaces the main file's (`allow_origins: []`
        // turns it off there).
        let route_cors = match &route.value.cors {
            Some(section) => cors(section, r),
            None => config.cors.clone(),
        };
        let browser_login = browser_login(&route, names, r);
        if let Some((Positioned { value, position }, credentials, certificates)) =
            route_spec(route, config, names, &mut claims, r)
        {
            config.route_client_certs.push(certificates);
            config.route_browser_login.push(browser_login);
            config.routes.push(value);
            config.route_origins.push(position);
            config.route_credentials.push(credentials);
            config.route_overrides.push(overrides);
            config.route_cors.push(route_cors);
        }
    }
    config.condition_claims = claims;
}

/// `browser_login: true`: needs `sessions:` and a protected route.
fn browser_login(route: &Spanned<RouteFile>, names: &Names, r: &mut Reporter<'_>) -> bool {
    let Some(flag) = route.value.browser_login.as_ref().filter(|flag| flag.value) else { return false };
    if !names.sessions {
        r.error(flag, "browser_login needs the sessions section (how browsers sign in)");
    } else if route.value.public.as_ref().is_some_and(|p| p.value) {
        r.error(flag, "a public route cannot also have browser_login");
    }
    true
}

/// `allow_override`: the override headers a route lets through.
fn allowed_overrides(route: &RouteFile, r: &mut Reporter<'_>) -> Vec<&'static str> {
    let mut allowed: Vec<&'static str> = Vec::new();
    let known = || METHOD_OVERRIDE_HEADERS.into_iter().chain(URL_OVERRIDE_HEADERS);
    for name in route.allow_override.iter().flatten() {
        match known().find(|header| header.eq_ignore_ascii_case(&name.value)) {
            Some(header) if allowed.contains(&header) => r.error(name, format!("'{}' is listed twice", name.value)),
            Some(header) => allowed.push(header),
            None => {
                let known: Vec<&str> = known().collect();
                r.error(name, format!("'{}' is not one of: {}", name.value, known.join(", ")));
            }
        }
    }
    allowed
}

/// One route with its position and the credential kinds it accepts, or
/// `None` when it (or something it names) is invalid.
fn route_spec(
    entry: Spanned<RouteFile>,
    config: &Config,
    names: &Names,
    claims: &mut Vec<ClaimPath>,
    r: &mut Reporter<'_>,
) -> Option<(Positioned<RouteSpec>, CredentialKinds, Option<RouteCertificates>)> {
    let errors_before = count_errors(r);
    let location = entry.referenced;
    let route = &entry.value;
    let mut check = RouteCheck { route, names, location, failed: false, r };
    let pattern = check.pattern();
    let methods = check.methods();
    let hosts = HostSet(route.hosts.iter().flatten().filter_map(|h| host_pattern(h, check.r)).collect());
    let upstream = check.upstream();
    let public = route.public.as_ref().is_some_and(|p| p.value);
    // `credentials: [client_cert]`: the certificate alone admits, no token
    // is looked at (decided like a public route, after the certificate).
    let cert_alone = !public && route.credentials.iter().flat_map(|l| &l.value).any(|n| n.value == CLIENT_CERT);
    let access = if public {
        check.public_access()
    } else if cert_alone {
        check.certificate_access()
    } else {
        check.protected(pattern.as_ref(), claims)
    };
    if route.any_scopes.as_ref().is_some_and(Vec::is_empty) {
        check.r.error_at(location, "any_scopes: [] can never be satisfied; omit it instead");
    }
    let rate_limits = check.rate_limits(config, public || cert_alone);
    let credentials = if cert_alone { CredentialKinds::NONE } else { check.credentials(public) };
    let certificates = check.client_certs(public, cert_alone);
    let name = check.name(&methods);
    if check.failed || count_errors(r) > errors_before {
        return None;
    }
    let value = RouteSpec { name, pattern: pattern?, methods, hosts, access, upstream: upstream?, rate_limits };
    Some((Positioned { value, position: Position::new(r.file, location) }, credentials, certificates))
}

/// The credential kind of a route admitted by its client certificate.
const CLIENT_CERT: &str = "client_cert";

fn list(items: &Option<Vec<Text>>) -> impl Iterator<Item = &Text> {
    items.iter().flatten()
}

fn certificate_rule(file: &ClientCertsFile, r: &mut Reporter<'_>) -> CertificateRule {
    let mut rule = CertificateRule::default();
    for text in list(&file.subjects) {
        match DistinguishedName::parse(&text.value) {
            Ok(name) => rule.subjects.push(name),
            Err(e) => r.error(text, format!("'{}' is not a distinguished name (CN=…,O=…): {e}", text.value)),
        }
    }
    for text in list(&file.dns_names) {
        if let Some(pattern) = host_pattern(text, r) {
            rule.dns_names.push(pattern);
        }
    }
    for text in list(&file.uris) {
        let valid = text.value.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty() && !rest.is_empty() && text.value.bytes().all(|b| b.is_ascii_graphic())
        });
        if valid {
            rule.uris.push(UriPattern::new(&text.value));
        } else {
            r.error(text, format!("'{}' is not a URI (scheme://…, or a prefix ending in /*)", text.value));
        }
    }
    for text in list(&file.fingerprints) {
        match parse_fingerprint(&text.value) {
            Some(print) => rule.fingerprints.push(print),
            None => {
                r.error(text, format!("'{}' is not a SHA-256 fingerprint (64 hex digits, ':' allowed)", text.value))
            }
        }
    }
    rule
}

/// One route being checked: the entry, where it starts, what it may name.
struct RouteCheck<'a, 'f> {
    route: &'a RouteFile,
    names: &'a Names,
    location: Location,
    /// Set when the route names something that was itself invalid.
    failed: bool,
    r: &'a mut Reporter<'f>,
}

impl RouteCheck<'_, '_> {
    fn pattern(&mut self) -> Option<PathPattern> {
        let path = &self.route.path;
        PathPattern::parse(&path.value)
            .map_err(|e| self.r.error(path, format!("invalid path pattern '{}': {e}", path.value)))
            .ok()
    }

    fn methods(&mut self) -> MethodSet {
        match &self.route.methods {
            None => MethodSet::Any,
            Some(list) if list.is_empty() => {
                self.r.error_at(self.location, "methods: [] matches nothing; omit it to match every method");
                MethodSet::Any
            }
            Some(list) => MethodSet::Only(list.iter().filter_map(|m| method(m, self.r)).collect()),
        }
    }

    /// The upstream named, or the only one there is.
    fn upstream(&mut self) -> Option<usize> {
        let upstreams = &self.names.upstreams;
        match &self.route.upstream {
            Some(name) => self.declared(upstreams, "upstream", &name.value, name),
            None if upstreams.len() == 1 => upstreams.values().next().copied().flatten(),
            None if upstreams.is_empty() => {
                self.r.error_at(self.location, "no upstreams are configured; add one under 'upstreams'");
                None
            }
            None => {
                self.r.error_at(self.location, "several upstreams are configured; name this route's 'upstream'");
                None
            }
        }
    }

    /// A public route takes no token, so token requirements on it would be
    /// silently ignored: they are errors.
    fn public_access(&mut self) -> Access {
        let route = self.route;
        for (field, present) in [
            ("scopes", route.scopes.is_some()),
            ("any_scopes", route.any_scopes.is_some()),
            ("issuers", route.issuers.is_some()),
            ("claims", route.claims.is_some()),
            ("credentials", route.credentials.is_some()),
        ] {
            if present {
                self.r.error_at(self.location, format!("a public route cannot also have {field}"));
            }
        }
        Access::Public
    }

    /// `credentials: [client_cert]`: nothing about tokens applies.
    fn certificate_access(&mut self) -> Access {
        let route = self.route;
        if let Some(list) = &route.credentials {
            if list.value.len() > 1 {
                let message = "client_cert stands alone in credentials; to require a certificate and a token, \
                               keep client_certs: and list the token kinds instead";
                self.r.error(list, message);
            }
        }
        for (field, present) in [
            ("scopes", route.scopes.is_some()),
            ("any_scopes", route.any_scopes.is_some()),
            ("issuers", route.issuers.is_some()),
            ("claims", route.claims.is_some()),
            ("browser_login", route.browser_login.is_some()),
        ] {
            if present {
                let message = format!("a route admitted by its client certificate alone cannot also have {field}");
                self.r.error_at(self.location, message);
            }
        }
        Access::Public
    }

    /// `client_certs:`: which verified client certificates the route takes.
    fn client_certs(&mut self, public: bool, alone: bool) -> Option<RouteCertificates> {
        let Some(section) = &self.route.client_certs else {
            if alone {
                let message = "credentials: [client_cert] needs client_certs: (which certificates are accepted)";
                self.r.error_at(self.location, message);
            }
            return None;
        };
        if public {
            let message =
                "a public route takes no credential; for a certificate alone write credentials: [client_cert]";
            self.r.error(section, message);
        }
        if !self.names.client_ca {
            self.r.error(
                section,
                "client_certs needs tls.client_ca in the main file (the CAs client certificates chain to)",
            );
        }
        let rule = certificate_rule(&section.value, self.r);
        Some(RouteCertificates { rule, alone })
    }

    fn protected(&mut self, pattern: Option<&PathPattern>, claims: &mut Vec<ClaimPath>) -> Access {
        let (route, names) = (self.route, self.names);
        let issuers = route.issuers.as_ref().map(|list| {
            list.iter()
                .filter_map(|name| match names.key_issuers.get(&name.value) {
                    Some(&index) => Some(key_issuer(index)),
                    None => self.issuer(&name.value, name).map(IssuerId),
                })
                .collect()
        });
        if names.issuers.is_empty() && !names.api_keys {
            let message =
                "this route needs a token but no issuers (or api_keys) are configured; add one or make it public";
            self.r.error_at(self.location, message);
        }
        Access::Protected(Requirement {
            all_scopes: scopes(route.scopes.as_deref(), self.r),
            any_scopes: scopes(route.any_scopes.as_deref(), self.r),
            issuers,
            claims: route.claims.as_ref().map_or_else(Vec::new, |c| claim_conditions(c, pattern, claims, self.r)),
        })
    }

    /// `credentials:`, or every configured kind. A route that names
    /// `issuers` takes the kinds it names: bearer tokens for token issuers,
    /// API keys for `api_keys.issuers`. Session cookies are accepted only
    /// where asked for (`browser_login`, or `session` in `credentials:`):
    /// a cookie that rides along on every request is a CSRF risk an API
    /// route must opt into.
    fn credentials(&mut self, public: bool) -> CredentialKinds {
        let names = self.names;
        let browser_login = self.route.browser_login.as_ref().is_some_and(|b| b.value);
        let configured = CredentialKinds {
            bearer: !names.issuers.is_empty(),
            api_key: names.api_keys,
            session: names.sessions && browser_login,
        };
        let named = self.route.issuers.as_ref().map(|list| {
            let keys = list.iter().any(|name| names.key_issuers.contains_key(&name.value));
            let tokens = list.iter().any(|name| !names.key_issuers.contains_key(&name.value));
            (tokens, keys)
        });
        let names_issuers = named.is_some_and(|(_, keys)| !keys);
        let Some(list) = &self.route.credentials else {
            return match named {
                None => configured,
                Some((tokens, keys)) => CredentialKinds {
                    bearer: configured.bearer && tokens,
                    api_key: configured.api_key && keys,
                    session: configured.session && tokens,
                },
            };
        };
        if public {
            return configured;
        }
        if list.value.is_empty() {
            self.r.error(list, "credentials: [] accepts nothing; omit it to accept every configured kind");
        }
        let mut kinds = CredentialKinds::NONE;
        for name in &list.value {
            let message = match CredentialKind::ALL.into_iter().find(|kind| kind.name() == name.value) {
                None => {
                    format!("unknown credential kind '{}' (defined: api_key, bearer, client_cert, session)", name.value)
                }
                Some(CredentialKind::Bearer) if !configured.bearer => "bearer: no issuers are configured".to_owned(),
                Some(CredentialKind::ApiKey) if !configured.api_key => {
                    "api_key: no api_keys section is configured".to_owned()
                }
                Some(CredentialKind::ApiKey) if names_issuers => {
                    "api_key: this route names only token issuers (give keys an api_keys.issuers name to list here)"
                        .to_owned()
                }
                Some(CredentialKind::Session) if !names.sessions => {
                    "session: no sessions section is configured".to_owned()
                }
                Some(kind) => {
                    match kind {
                        CredentialKind::Bearer => kinds.bearer = true,
                        CredentialKind::ApiKey => kinds.api_key = true,
                        CredentialKind::Session => kinds.session = true,
                    }
                    continue;
                }
            };
            self.r.error(name, message);
        }
        if browser_login && !kinds.session {
            self.r.error(list, "browser_login signs browsers in with a session: add session to credentials");
        }
        kinds
    }

    fn rate_limits(&mut self, config: &Config, public: bool) -> Vec<usize> {
        let mut out = Vec::new();
        let Some(limits) = &self.route.rate_limit else { return out };
        for name in &limits.value.0 {
            let Some(index) = self.declared(&self.names.rate_limits, "rate limit", name, limits) else { continue };
            if public && config.rate_limits[index].key == RateKey::Subject {
                let message = format!("rate limit '{name}' is keyed by subject, which a public route never has");
                self.r.error(limits, message);
            }
            out.push(index);
        }
        out
    }

    /// The index of the `what` called `name`, reported at `at`. An unknown
    /// name is an error that lists the known ones; a name whose declaration
    /// was itself invalid (already reported) only fails the route, so the
    /// operator is not sent looking for a typo that is not there.
    /// A token issuer by name; the error lists API key issuers too.
    fn issuer(&mut self, name: &str, at: &Spanned<String>) -> Option<usize> {
        let names = self.names;
        let index = names.issuers.get(name);
        if index.is_none() {
            let all = names.issuers.keys().chain(names.key_issuers.keys());
            self.r.error(at, format!("unknown issuer '{name}'{}", known(all)));
        }
        let index = index.copied().flatten();
        self.failed |= index.is_none();
        index
    }

    fn declared<T>(
        &mut self,
        map: &HashMap<String, Option<usize>>,
        what: &str,
        name: &str,
        at: &Spanned<T>,
    ) -> Option<usize> {
        let index = map.get(name);
        if index.is_none() {
            self.r.error(at, format!("unknown {what} '{name}'{}", known(map.keys())));
        }
        let index = index.copied().flatten();
        self.failed |= index.is_none();
        index
    }

    /// The name given, or one made from the methods and path (logs, metrics).
    fn name(&mut self, methods: &MethodSet) -> String {
        let route = self.route;
        match &route.name {
            Some(name) if name.value.trim().is_empty() => {
                self.r.error(name, "route name must not be empty");
                String::new()
            }
            Some(name) => name.value.clone(),
            None => match methods {
                MethodSet::Any => route.path.value.clone(),
                MethodSet::Only(ms) => {
                    format!("{} {}", ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","), route.path.value)
                }
            },
        }
    }
}

fn scopes(list: Option<&[Text]>, r: &mut Reporter<'_>) -> Vec<Box<str>> {
    list.unwrap_or_default()
        .iter()
        .filter_map(|s| {
            // The same rule as for the scopes a token carries, so a required
            // scope is always one a token can have.
            if policy::is_scope_token(&s.value) {
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
