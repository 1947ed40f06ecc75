//! Issuers: who may sign tokens, with which algorithms and keys, for which
//! audiences, and (for opaque tokens) how to introspect them. Secrets are
//! read here from the environment and never echoed in a message.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::values::{bounded, claim_path, duration, http_url, is_env_name, is_name, positive_duration};
use super::{count_errors, Validator};
use crate::diag::{Position, Positioned, Reporter};
use crate::file::{ClaimScalarFile, ClaimValuesFile, IntrospectionFile, IssuerFile, OrderedMap, Text};
use crate::model::{Algorithm, ClaimPath, Introspection, Issuer, KeySource, RequiredClaim, RequiredValue, Secret};
use crate::Mode;

/// Names and `iss` values seen so far: both must be unique.
#[derive(Default)]
struct Seen {
    names: HashSet<String>,
    iss: HashMap<String, String>,
}

impl Seen {
    fn check(&mut self, issuer: &IssuerFile, r: &mut Reporter<'_>) {
        if !is_name(&issuer.name.value) {
            r.error(&issuer.name, "issuer name must be letters, digits, '-' or '_'");
        } else if !self.names.insert(issuer.name.value.clone()) {
            r.error(&issuer.name, format!("issuer '{}' is defined twice", issuer.name.value));
        }
        // Tokens are matched to an issuer by their `iss`: it must be unique.
        match self.iss.get(&issuer.issuer.value) {
            Some(other) => r.error(
                &issuer.issuer,
                format!(
                    "issuer '{}' has the same 'issuer' as '{other}'; tokens could not be told apart",
                    issuer.name.value
                ),
            ),
            None => {
                self.iss.insert(issuer.issuer.value.clone(), issuer.name.value.clone());
            }
        }
    }
}

impl Validator<'_> {
    /// The valid issuers, in file order, each with the position of its entry.
    pub(super) fn issuers(&self, file: Vec<Spanned<IssuerFile>>, r: &mut Reporter<'_>) -> Vec<Positioned<Issuer>> {
        let mut seen = Seen::default();
        let mut out = Vec::new();
        for entry in file {
            let location = entry.referenced;
            seen.check(&entry.value, r);
            if let Some(built) = self.issuer(entry.value, location, r) {
                out.push(Positioned { value: built, position: Position::new(r.file, location) });
            }
        }
        out
    }

    fn issuer(&self, file: IssuerFile, location: Location, r: &mut Reporter<'_>) -> Option<Issuer> {
        let errors_before = count_errors(r);
        if file.issuer.value.is_empty() {
            r.error(&file.issuer, "issuer must not be empty (it is compared with the token's 'iss')");
        }
        let algorithms = algorithms(file.algorithms.as_deref(), file.secret_env.is_some(), location, r);
        let keys = self.keys(&file, &algorithms, location, r);
        let (audiences, any_audience) = audiences(&file, location, r);
        let audience_claims = audience_claims(&file, any_audience, r);
        let required_claims = required_claims(file.required_claims.as_ref(), r);
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
            audience_claims,
            required_claims,
            require_bound_tokens: file.require_bound_tokens.as_ref().is_some_and(|b| b.value),
        })
    }

    /// Where the keys come from: the secret for HMAC, else a JWKS (named, or
    /// found by OIDC discovery). An HMAC issuer never fetches keys, and a
    /// public-key issuer never holds a secret, so neither can be confused.
    fn keys(
        &self,
        file: &IssuerFile,
        algorithms: &[Algorithm],
        location: Location,
        r: &mut Reporter<'_>,
    ) -> Option<KeySource> {
        if algorithms.first().is_some_and(|a| a.is_hmac()) {
            if let Some(uri) = &file.jwks_uri {
                r.error(uri, "an HMAC issuer verifies with its secret; remove jwks_uri or use public-key algorithms");
            }
            let Some(env) = &file.secret_env else {
                r.error_at(location, "HMAC algorithms need secret_env: the name of the variable holding the secret");
                return None;
            };
            return Some(self.hmac_secret(env, algorithms, r));
        }
        if let Some(env) = &file.secret_env {
            r.error(env, "secret_env is only for HMAC algorithms (HS256/384/512); public-key issuers use a JWKS");
        }
        match &file.jwks_uri {
            Some(uri) => http_url(uri, "jwks_uri", r).map(|uri| KeySource::Jwks { uri }),
            None => http_url(&file.issuer, "issuer (used for OIDC discovery)", r).map(|issuer| KeySource::Discovery {
                url: format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
            }),
        }
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
    pub(super) fn secret(&self, env: &Text, r: &mut Reporter<'_>) -> Option<Secret> {
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
}

/// The accepted audiences, and whether the check is waived. Waiving it must
/// be explicit: an issuer without audiences would accept tokens minted for
/// any other service of the same IdP.
fn audiences(file: &IssuerFile, location: Location, r: &mut Reporter<'_>) -> (Vec<String>, bool) {
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
    (audiences, any_audience)
}

/// Where the token's audience is read (`aud` unless told). Naming claims
/// while the check is waived would read as a check that is never made.
fn audience_claims(file: &IssuerFile, any_audience: bool, r: &mut Reporter<'_>) -> Vec<ClaimPath> {
    let Some(list) = &file.audience_claims else {
        return vec![ClaimPath(vec!["aud".into()])];
    };
    if any_audience {
        r.error(list, "audience_claims does nothing with allow_any_audience: true (no audience is checked); keep one");
    }
    if list.value.is_empty() {
        r.error(
            list,
            "audience_claims: [] reads the audience from nowhere and no token would pass; the default is [aud]",
        );
    }
    list.value.iter().filter_map(|t| claim_path(t, r)).collect()
}

/// The claims every token of the issuer must carry, each with one of its
/// listed values: `token_use: access` for Cognito, `typ: Bearer` for Keycloak.
fn required_claims(
    file: Option<&Spanned<OrderedMap<Spanned<ClaimValuesFile>>>>,
    r: &mut Reporter<'_>,
) -> Vec<RequiredClaim> {
    let Some(map) = file else {
        return Vec::new();
    };
    if map.value.0.is_empty() {
        r.error(map, "required_claims: {} requires nothing; name a claim and the value it must have, or remove it");
    }
    let mut out = Vec::new();
    for (name, values) in &map.value.0 {
        let claim = claim_path(name, r);
        if values.value.0.is_empty() {
            r.error(values, format!("required claim '{}' lists no value: no token could carry it", name.value));
        }
        let values = values
            .value
            .0
            .iter()
            .map(|value| match value {
                ClaimScalarFile::String(text) => RequiredValue::String(text.clone()),
                ClaimScalarFile::Bool(flag) => RequiredValue::Bool(*flag),
            })
            .collect();
        out.extend(claim.map(|claim| RequiredClaim { claim, values }));
    }
    out
}

fn algorithms(list: Option<&[Text]>, has_secret: bool, location: Location, r: &mut Reporter<'_>) -> Vec<Algorithm> {
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
