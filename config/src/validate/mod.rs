//! File types → runtime model, collecting every problem with its position.
//!
//! One module a section: `main_file` (top-level settings, upstreams, identity
//! headers, and the order they are checked in), `issuers`, `routes` (of the
//! main file and of policy files), `limits` (rate limits, token and cache
//! bounds), `api_keys` (the section and the key files), `cors`, `redis` (with revocation and the admin token), `sessions` and `values` (the
//! typed scalars they all share). Here: what the
//! sections share, and the warnings that need the whole configuration.

mod api_keys;
mod assertion;
mod claims;
mod cors;
mod issuers;
mod limits;
mod main_file;
mod redis;
mod routes;
mod sessions;
mod tls;
mod values;

use std::collections::HashMap;

use policy::{Access, IssuerId};

use crate::diag::{Diagnostic, Position, Positioned, Reporter, Severity};
use crate::model::{Config, Issuer};
use crate::Mode;

pub(crate) use api_keys::add_key_file;
pub use api_keys::{is_key_id, parse_time};
pub(crate) use main_file::MainFile;
pub(crate) use routes::add_routes;
pub use sessions::{is_plain_path, SESSION_KEY_BYTES};
pub use values::is_name;

/// Reads secrets; the environment in production, a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) struct Validator<'a> {
    pub mode: Mode,
    pub env: EnvLookup<'a>,
}

impl Validator<'_> {
    /// Serving (every secret must be present), not `check`.
    fn serving(&self) -> bool {
        matches!(self.mode, Mode::Serve)
    }
}

/// What the main file declares that routes refer to, by name. `None` marks a
/// declaration that was itself invalid (already reported): routes naming it
/// fail without a second, misleading "unknown name" error.
pub(crate) struct Names {
    /// `api_keys` is configured.
    api_keys: bool,
    /// `sessions` is configured (browser sign-in).
    sessions: bool,
    /// `tls.client_ca` is set: routes may require client certificates.
    client_ca: bool,
    /// `api_keys.issuers`: name → index (routes name them in `issuers`).
    key_issuers: HashMap<String, usize>,
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

/// The names an "unknown name" error lists, so the fix is in the message.
fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        return " (none are defined)".to_owned();
    }
    names.sort_unstable();
    format!(" (defined: {})", names.join(", "))
}

/// Errors so far; an entry is kept only when checking it added none.
fn count_errors(r: &Reporter<'_>) -> usize {
    r.out.iter().filter(|d| d.severity == Severity::Error).count()
}

/// Once every route is in: warn about what the configuration as a whole
/// makes useless, then hand the issuers to the model. Each issuer brings its
/// own position, so a warning names that issuer's line even when an earlier
/// entry was invalid and left out.
pub(crate) fn finish(config: &mut Config, issuers: Vec<Positioned<Issuer>>, out: &mut Vec<Diagnostic>) {
    if config.routes.is_empty() {
        let main = Position::file(&config.sources[0]);
        out.push(warning(main, "there are no routes: every request will be denied".to_owned()));
    }
    shadowed_routes(config, out);
    unusable_issuers(config, &issuers, out);
    config.issuers = issuers.into_iter().map(|issuer| issuer.value).collect();
}

fn warning(position: Position, message: String) -> Diagnostic {
    Diagnostic { severity: Severity::Warning, position, message }
}

fn shadowed_routes(config: &Config, out: &mut Vec<Diagnostic>) {
    let table = policy::RouteTable::new(config.routes.clone());
    for shadowed in table.shadowed() {
        let (route, by) = (&config.routes[shadowed.route], &config.routes[shadowed.by]);
        out.push(warning(
            config.route_origins[shadowed.route].clone(),
            format!(
                "route '{}' can never match: route '{}' at {} comes first and covers every request it applies to",
                route.name, by.name, config.route_origins[shadowed.by]
            ),
        ));
    }
}

/// `issuers` are the model's issuers in order: `IssuerId(i)` is `issuers[i]`.
fn unusable_issuers(config: &Config, issuers: &[Positioned<Issuer>], out: &mut Vec<Diagnostic>) {
    for (index, issuer) in issuers.iter().enumerate() {
        let usable = config.routes.iter().any(|route| match &route.access {
            Access::Public => false,
            Access::Protected(req) => req.issuers.as_ref().is_none_or(|list| list.contains(&IssuerId(index))),
        });
        if !usable {
            let message = format!("issuer '{}' is not usable by any route", issuer.value.name);
            out.push(warning(issuer.position.clone(), message));
        }
    }
}
