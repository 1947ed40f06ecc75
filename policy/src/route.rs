//! What a route is: a pattern, the requests it applies to and what it requires.

use std::fmt;

use crate::claims::ClaimCondition;
use crate::pattern::PathPattern;

/// An HTTP method a route may be restricted to. Extension methods are kept
/// by name (upper case, as the request must send them: methods are
/// case-sensitive in HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Method(Box<str>);

impl Method {
    /// `name` must be an HTTP token; callers validate that (see `config`).
    pub fn new(name: &str) -> Method {
        Method(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The methods a route applies to. `Any` is the default when the operator
/// lists none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSet {
    Any,
    Only(Vec<Method>),
}

impl MethodSet {
    pub fn contains(&self, method: &str) -> bool {
        match self {
            MethodSet::Any => true,
            MethodSet::Only(methods) => methods.iter().any(|m| m.as_str() == method),
        }
    }

    /// True when every method in `self` is also in `other`.
    pub fn is_subset_of(&self, other: &MethodSet) -> bool {
        match (self, other) {
            (_, MethodSet::Any) => true,
            (MethodSet::Any, MethodSet::Only(_)) => false,
            (MethodSet::Only(mine), MethodSet::Only(_)) => mine.iter().all(|m| other.contains(m.as_str())),
        }
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodSet::Any => f.write_str("any method"),
            MethodSet::Only(methods) => {
                let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

/// A host a route is restricted to: an exact name, or `*.suffix` for any
/// subdomain of `suffix` (not `suffix` itself). Stored lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(Box<str>),
    Subdomains(Box<str>),
}

impl HostPattern {
    /// Parse `api.example.com` or `*.example.com` (already validated as a
    /// host name by `config`).
    pub fn new(text: &str) -> HostPattern {
        let lower = text.to_ascii_lowercase();
        match lower.strip_prefix("*.") {
            Some(suffix) => HostPattern::Subdomains(suffix.into()),
            None => HostPattern::Exact(lower.into()),
        }
    }

    /// `host` must be normalised ([`crate::host::normalize_host`]).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => **name == *host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(&**suffix)
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        }
    }

    fn is_covered_by(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
            (HostPattern::Exact(a), HostPattern::Subdomains(_)) => other.matches(a),
            (HostPattern::Subdomains(a), HostPattern::Subdomains(b)) => {
                a == b || HostPattern::Subdomains(b.clone()).matches(a)
            }
            (HostPattern::Subdomains(_), HostPattern::Exact(_)) => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Subdomains(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// The hosts a route applies to; empty means any host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSet(pub Vec<HostPattern>);

impl HostSet {
    pub fn matches(&self, host: Option<&str>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        host.is_some_and(|host| self.0.iter().any(|p| p.matches(host)))
    }

    pub fn is_subset_of(&self, other: &HostSet) -> bool {
        if other.0.is_empty() {
            return true;
        }
        !self.0.is_empty() && self.0.iter().all(|mine| other.0.iter().any(|theirs| mine.is_covered_by(theirs)))
    }
}

/// Index of an issuer in the runtime configuration's issuer list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerId(pub usize);

/// What a protected route requires of a verified identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    /// Every one of these scopes.
    pub all_scopes: Vec<Box<str>>,
    /// At least one of these scopes (ignored when empty).
    pub any_scopes: Vec<Box<str>>,
    /// Only tokens from these issuers (any configured issuer when `None`).
    pub issuers: Option<Vec<IssuerId>>,
    /// Claim conditions, checked in this order after the scopes.
    pub claims: Vec<ClaimCondition>,
}

/// Who may use a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone; no token is looked at.
    Public,
    /// A verified token meeting the requirement.
    Protected(Requirement),
}

/// A route as the operator wrote it, validated by `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Label in metrics and logs.
    pub name: String,
    pub pattern: PathPattern,
    pub methods: MethodSet,
    pub hosts: HostSet,
    pub access: Access,
    /// Index into the runtime configuration's upstream list.
    pub upstream: usize,
    /// Indices into the runtime configuration's rate-limit list.
    pub rate_limits: Vec<usize>,
}

/// A compiled route, as the route table hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: Box<str>,
    pub pattern: PathPattern,
    pub methods: MethodSet,
    pub hosts: HostSet,
    pub access: Access,
    pub upstream: usize,
    pub rate_limits: Vec<usize>,
    /// The RFC 6750 `scope` attribute for a 403: every scope that satisfies
    /// the route, space-separated. Built once so a refusal costs no formatting.
    pub required_scope: Box<str>,
    /// A claim condition compares a captured path segment: deciding needs
    /// the request's normalised path.
    pub reads_path: bool,
}

impl Route {
    pub(crate) fn compile(spec: RouteSpec) -> Route {
        let required_scope = match &spec.access {
            Access::Public => String::new(),
            Access::Protected(req) => {
                let all = req.all_scopes.iter().map(|s| &**s);
                let any = req.any_scopes.iter().map(|s| &**s);
                all.chain(any).collect::<Vec<_>>().join(" ")
            }
        };
        let reads_path = match &spec.access {
            Access::Public => false,
            Access::Protected(req) => req.claims.iter().any(ClaimCondition::reads_path),
        };
        Route {
            reads_path,
            name: spec.name.into(),
            pattern: spec.pattern,
            methods: spec.methods,
            hosts: spec.hosts,
            access: spec.access,
            upstream: spec.upstream,
            rate_limits: spec.rate_limits,
            required_scope: required_scope.into(),
        }
    }

    /// Does the route apply to this method and host? (The path is the table's job.)
    pub fn applies_to(&self, method: &str, host: Option<&str>) -> bool {
        self.methods.contains(method) && self.hosts.matches(host)
    }

    /// True when every request this route applies to is also covered by `earlier`.
    pub fn is_shadowed_by(&self, earlier: &Route) -> bool {
        self.methods.is_subset_of(&earlier.methods)
            && self.hosts.is_subset_of(&earlier.hosts)
            && self.pattern.is_covered_by(&earlier.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let exact = HostPattern::new("API.example.com");
        assert!(exact.matches("api.example.com"));
        assert!(!exact.matches("x.api.example.com"));
        let wild = HostPattern::new("*.example.com");
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
        assert!(!wild.matches(".example.com"));
    }

    #[test]
    fn host_sets() {
        let any = HostSet::default();
        let api = HostSet(vec![HostPattern::new("api.example.com")]);
        let wild = HostSet(vec![HostPattern::new("*.example.com")]);
        assert!(any.matches(None));
        assert!(!api.matches(None));
        assert!(api.is_subset_of(&any));
        assert!(api.is_subset_of(&wild));
        assert!(!wild.is_subset_of(&api));
        assert!(!any.is_subset_of(&api));
    }

    #[test]
    fn method_sets() {
        let get = MethodSet::Only(vec![Method::new("GET")]);
        let rw = MethodSet::Only(vec![Method::new("GET"), Method::new("POST")]);
        assert!(get.contains("GET"));
        assert!(!get.contains("get"));
        assert!(get.is_subset_of(&rw));
        assert!(!rw.is_subset_of(&get));
        assert!(rw.is_subset_of(&MethodSet::Any));
        assert!(!MethodSet::Any.is_subset_of(&rw));
    }
}
