//! `portcullis check` and `portcullis explain`: the configuration, read
//! without serving.

use std::fmt::Write as _;
use std::path::Path;

use config::{CredentialKinds, Loaded, Mode, Severity};
use policy::{
    decide, normalize, normalize_host, Access, ClaimValues, Decision, IssuerId, Principal, RouteTable, ScopeSet,
};

use crate::auth::{condition_value, Challenges, Scheme, API_KEY_ISSUER};
use crate::gateway::respond::Denied;
use crate::runtime::configured_credentials;

/// Validate a configuration. Prints every problem as `FILE:LINE:COL:
/// message` and returns the process exit code: 0 valid, 1 not.
pub fn check(path: &Path, out: &mut impl std::io::Write) -> std::io::Result<i32> {
    match config::load(path, Mode::Check).and_then(with_certificates) {
        Ok(Loaded { config, warnings }) => {
            for warning in &warnings {
                writeln!(out, "{warning}")?;
            }
            writeln!(
                out,
                "{}: OK ({} routes, {} issuers, {} upstreams, {}{} files){}",
                path.display(),
                config.routes.len(),
                config.issuers.len(),
                config.upstreams.len(),
                config.api_keys.as_ref().map_or(String::new(), |keys| format!("{} API keys, ", keys.keys.len())),
                config.sources.len(),
                match warnings.len() {
                    0 => String::new(),
                    1 => ", 1 warning".to_owned(),
                    n => format!(", {n} warnings"),
                }
            )?;
            Ok(0)
        }
        Err(error) => {
            for diagnostic in &error.diagnostics {
                writeln!(out, "{diagnostic}")?;
            }
            let errors = error.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
            writeln!(out, "{}: invalid ({errors} error{})", path.display(), if errors == 1 { "" } else { "s" })?;
            Ok(1)
        }
    }
}

/// The certificates of `tls:` parsed as the listener will: a key that is
/// not its certificate's, an expired or unreadable certificate are errors,
/// one expiring within 14 days a warning.
fn with_certificates(mut loaded: Loaded) -> Result<Loaded, config::LoadError> {
    let Some(tls) = &loaded.config.tls else { return Ok(loaded) };
    let findings = crate::tls::inspect(tls);
    let diagnostic = |(position, severity, message)| config::Diagnostic { severity, position, message };
    let (errors, warnings): (Vec<_>, Vec<_>) =
        findings.into_iter().map(diagnostic).partition(|d| d.severity == Severity::Error);
    loaded.warnings.extend(warnings);
    if errors.is_empty() {
        return Ok(loaded);
    }
    let mut diagnostics = errors;
    diagnostics.append(&mut loaded.warnings);
    Err(config::LoadError { diagnostics })
}

/// What `explain` is asked about.
pub struct Question<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub scopes: &'a [String],
    pub issuer: Option<&'a str>,
    /// `name=value` claims the token would carry; the value is JSON when it
    /// parses as JSON (`true`, `42`, `["ops"]`), else a string.
    pub claims: &'a [String],
}

/// Which route matches a request, what it requires, and what a token with
/// the given scopes would get. Returns the text and an exit code (0 when
/// the question could be answered).
pub fn explain(path: &Path, question: &Question<'_>) -> (String, i32) {
    let loaded = match config::load(path, Mode::Check) {
        Ok(loaded) => loaded,
        Err(error) => return (format!("{error}\n"), 1),
    };
    let config = loaded.config;
    let mut text = String::new();
    let _ = writeln!(text, "{} {}", question.method, question.path);
    let normalized = match normalize(question.path) {
        Ok(path) => path,
        Err(e) => {
            let _ = writeln!(text, "  answer: {}; never forwarded", Denied::bad_request(400, e.to_string()).describe());
            return (text, 0);
        }
    };
    if normalized.is_rewritten() {
        let _ = writeln!(text, "  normalised path: {normalized}");
    }
    let host = match question.host.map(normalize_host) {
        Some(Ok(host)) => Some(host.into_owned()),
        Some(Err(e)) => {
            let _ = writeln!(text, "  answer: {}", Denied::bad_request(400, e.to_string()).describe());
            return (text, 0);
        }
        None => None,
    };
    let table = RouteTable::new(config.routes.clone());
    let index = table.find_index(question.method, host.as_deref(), &normalized);
    let route = index.map(|i| &table.routes()[i]);
    match (route, index) {
        (Some(route), Some(i)) => {
            let _ = writeln!(text, "  route: {} (defined at {})", route.name, config.route_origins[i]);
            let _ = writeln!(text, "    pattern: {}   methods: {}", route.pattern, route.methods);
            if !route.hosts.0.is_empty() {
                let hosts: Vec<String> = route.hosts.0.iter().map(ToString::to_string).collect();
                let _ = writeln!(text, "    hosts: {}", hosts.join(", "));
            }
            let accepts = config.route_credentials.get(i).copied().unwrap_or(CredentialKinds::ANY);
            let _ = writeln!(text, "    requires: {}", requirement(&route.access, &config, accepts));
            if config.api_keys.is_some() && !matches!(route.access, Access::Public) {
                let _ = writeln!(text, "    credentials: {}", accepts.names().join(", "));
            }
            if let Some(certificates) = config.route_client_certs.get(i).and_then(Option::as_ref) {
                let _ = writeln!(text, "    client certificate: {}", describe_client_certs(certificates));
                let missing = Denied::client_certificate(policy::CertificateVerdict::Missing);
                if let Some(denied) = missing {
                    let _ = writeln!(text, "    without one: {}", denied.describe());
                }
            }
            let upstream = &config.upstreams[route.upstream];
            let scheme = if upstream.tls { "https" } else { "http" };
            let _ = writeln!(text, "    upstream: {} ({scheme}://{})", upstream.name, upstream.address());
            if !route.rate_limits.is_empty() {
                let limits: Vec<String> = route
                    .rate_limits
                    .iter()
                    .map(|&i| {
                        let l = &config.rate_limits[i];
                        format!("{} ({} per {:?} by {})", l.name, l.limit, l.per, l.key)
                    })
                    .collect();
                let _ = writeln!(text, "    rate limits: {}", limits.join(", "));
            }
            if let Some(cors) = config.route_cors.get(i).and_then(Option::as_deref) {
                let _ = writeln!(text, "    cors: {}", describe_cors(cors));
            }
        }
        _ => {
            let _ = writeln!(text, "  route: none matches (default deny)");
        }
    }

    // `--issuer` may name an API key issuer (`api_keys.issuers`): then it is
    // the key's issuer, and no token line is printed.
    let key_issuer = question.issuer.and_then(|name| {
        let keys = config.api_keys.as_ref()?;
        keys.issuers.iter().position(|declared| declared == name).map(config::key_issuer)
    });
    let issuer = match question.issuer {
        Some(_) if key_issuer.is_some() => None,
        Some(name) => match config.issuers.iter().position(|i| i.name == name) {
            Some(index) => Some(IssuerId(index)),
            None => return (format!("{text}  unknown issuer '{name}'\n"), 1),
        },
        None => default_issuer(route.map(|r| &r.access)),
    };
    let forwarded = format!("forwarded to the upstream as {normalized}");
    let challenges = Challenges::new(&config.realm, configured_credentials(&config));
    let accepts = index.and_then(|i| config.route_credentials.get(i).copied()).unwrap_or(CredentialKinds::ANY);
    let answer = |decision, scheme| answer(decision, &challenges, accepts, scheme, &forwarded);
    let _ = writeln!(text, "  without a token: {}", answer(decide(route, None, Some(&normalized)), Scheme::Bearer));
    let claims = match claim_values(question.claims, &config) {
        Ok(claims) => claims,
        Err(message) => return (format!("{text}  {message}\n"), 1),
    };
    match issuer {
        Some(issuer) if issuer.0 < config.issuers.len() || config.issuers.is_empty() => {
            let scopes = ScopeSet::new(question.scopes.iter().map(String::as_str));
            let principal = Principal { issuer, scopes: &scopes, claims: &claims };
            let decision = decide(route, Some(principal), Some(&normalized));
            let issuer_name = config.issuers.get(issuer.0).map_or("-", |i| i.name.as_str());
            let _ = writeln!(
                text,
                "  with a valid token from '{issuer_name}' with scopes [{}]{}: {}",
                question.scopes.join(" "),
                if question.claims.is_empty() {
                    String::new()
                } else {
                    format!(" and claims {}", question.claims.join(" "))
                },
                answer(decision, Scheme::Bearer)
            );
        }
        _ if accepts.bearer && config.api_keys.is_none() => {
            let _ = writeln!(text, "  (no issuers are configured, so no token can be valid)");
        }
        _ => {}
    }
    if let Some(keys) = &config.api_keys {
        let scopes = ScopeSet::new(question.scopes.iter().map(String::as_str));
        let principal = Principal { issuer: key_issuer.unwrap_or(API_KEY_ISSUER), scopes: &scopes, claims: &claims };
        let line = if accepts.api_key {
            answer(decide(route, Some(principal), Some(&normalized)), Scheme::ApiKey)
        } else {
            let (challenge, why) = challenges.required(accepts);
            format!(
                "not accepted here: the key counts as absent (401 unauthorized: {why}; WWW-Authenticate: {challenge})"
            )
        };
        let _ = writeln!(
            text,
            "  with a valid API key with scopes [{}] ({} keys configured): {line}",
            question.scopes.join(" "),
            keys.keys.len()
        );
    }
    (text, 0)
}

/// A route's CORS policy in one line: who may read its answers.
/// What `client_certs:` accepts, and whether it is the only credential.
fn describe_client_certs(certificates: &config::RouteCertificates) -> String {
    let rule = &certificates.rule;
    let mut accepted: Vec<String> = Vec::new();
    accepted.extend(rule.subjects.iter().map(|s| format!("subject {s}")));
    accepted.extend(rule.dns_names.iter().map(|d| format!("DNS {d}")));
    accepted.extend(rule.uris.iter().map(|u| format!("URI {u}")));
    if !rule.fingerprints.is_empty() {
        accepted.push(format!("{} fingerprint(s)", rule.fingerprints.len()));
    }
    let which = if accepted.is_empty() { "any the client CA verified".to_owned() } else { accepted.join(" or ") };
    let alone = if certificates.alone { " (alone: no token is looked at)" } else { " (and a token)" };
    format!("required, {which}{alone}")
}

fn describe_cors(cors: &policy::cors::CorsPolicy) -> String {
    let origins: Vec<String> = cors.origins().iter().map(ToString::to_string).collect();
    let mut line = format!("origins {}; methods {}", origins.join(", "), cors.allow_methods_value());
    if !cors.allow_headers_value().is_empty() {
        line.push_str(&format!("; headers {}", cors.allow_headers_value()));
    }
    if cors.allow_credentials() {
        line.push_str("; with credentials");
    }
    line.push_str("; preflights answered here");
    line
}

fn default_issuer(access: Option<&Access>) -> Option<IssuerId> {
    match access {
        Some(Access::Protected(req)) => {
            Some(req.issuers.as_ref().and_then(|v| v.first().copied()).unwrap_or(IssuerId(0)))
        }
        _ => Some(IssuerId(0)),
    }
}

fn requirement(access: &Access, config: &config::Config, accepts: CredentialKinds) -> String {
    let req = match access {
        Access::Public => return "nothing (public; identity headers are still stripped)".to_owned(),
        Access::Protected(req) => req,
    };
    let what = match (accepts.bearer, accepts.api_key && config.api_keys.is_some()) {
        (true, true) => "a valid token or API key",
        (false, true) => "a valid API key",
        _ => "a valid token",
    };
    let mut parts = vec![what.to_owned()];
    if let Some(issuers) = &req.issuers {
        let names: Vec<&str> =
            issuers.iter().filter_map(|i| config.issuers.get(i.0)).map(|i| i.name.as_str()).collect();
        parts.push(format!("from {}", names.join(" or ")));
    }
    if !req.all_scopes.is_empty() {
        parts.push(format!("with all of [{}]", req.all_scopes.join(" ")));
    }
    if !req.any_scopes.is_empty() {
        parts.push(format!("with one of [{}]", req.any_scopes.join(" ")));
    }
    if !req.claims.is_empty() {
        let conditions: Vec<String> = req.claims.iter().map(ToString::to_string).collect();
        parts.push(format!("whose claims satisfy: {}", conditions.join("; ")));
    }
    parts.join(" ")
}

/// The `--claim name=value` arguments as the values conditions read.
fn claim_values(arguments: &[String], config: &config::Config) -> Result<ClaimValues, String> {
    let mut values = vec![None; config.condition_claims.len()];
    for argument in arguments {
        let Some((name, value)) = argument.split_once('=') else {
            return Err(format!("--claim '{argument}': write NAME=VALUE"));
        };
        let Some(index) = config.condition_claims.iter().position(|c| c.to_string() == name) else {
            return Err(format!("--claim '{name}': no route condition reads this claim"));
        };
        let json = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        values[index] = Some(condition_value(&json));
    }
    Ok(ClaimValues(values))
}

/// The answer to a decision, from the same mapping the proxy answers with.
fn answer(
    decision: Decision<'_>,
    challenges: &Challenges,
    accepts: CredentialKinds,
    scheme: Scheme,
    forwarded: &str,
) -> String {
    if decision == Decision::Unauthenticated {
        return Denied::credential_required(challenges, accepts).describe();
    }
    match (Denied::by_policy(decision, challenges, scheme), decision) {
        (Some(denied), Decision::ClaimNotMet { condition }) => {
            format!("{} (decided by the condition: {condition})", denied.describe())
        }
        (Some(denied), _) => denied.describe(),
        (None, _) => format!("200-class: {forwarded}"),
    }
}
