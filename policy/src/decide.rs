//! The access decision: route requirements against a verified identity.

use crate::claims::{ClaimCondition, ClaimValues};
use crate::path::NormalizedPath;
use crate::route::{Access, IssuerId, Route};

/// The scopes a verified token carries: sorted, without duplicates, in
/// one allocation (the scope-tokens joined by single spaces, which no
/// scope-token contains). A verified-token cache holds one of these per
/// identity, so its size is what 100,000 identities cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Box<str>);

impl ScopeSet {
    /// The set of `scopes`. What is not a scope-token (empty, with a space
    /// or a quote) is left out: no route can require it.
    pub fn new<I, S>(scopes: I) -> ScopeSet
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let owned: Vec<S> = scopes.into_iter().collect();
        let mut names: Vec<&str> = owned.iter().map(AsRef::as_ref).filter(|s| is_scope_token(s)).collect();
        names.sort_unstable();
        names.dedup();
        ScopeSet(names.join(" ").into_boxed_str())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// In order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    /// The scopes in order, separated by single spaces (OAuth's `scope`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An RFC 6749 section 3.3 scope-token: `1*( %x21 / %x23-5B / %x5D-7E )`,
/// visible ASCII without space, `"` or `\`. The one definition: the
/// configuration checks route scopes with it and token claims are filtered
/// with it, so a scope a route requires is always one a token can carry.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty() && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The part of a verified identity that the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    pub issuer: IssuerId,
    pub scopes: &'a ScopeSet,
    /// The values of the claims route conditions read.
    pub claims: &'a ClaimValues,
}

/// The outcome of [`decide`]. Failures to authenticate a token at all
/// (bad signature, expired, ...) happen before the policy is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'r> {
    /// A public route: forward without identity.
    Public,
    /// A protected route and a token that satisfies it: forward with identity.
    Allow,
    /// No token where one is needed (also for an unmatched path without a
    /// token, which must not reveal that nothing is routed there): 401.
    Unauthenticated,
    /// A valid token from an issuer the route does not accept: 401 invalid_token.
    IssuerNotAccepted,
    /// A valid token without the scopes the route requires: 403.
    InsufficientScope { required: &'r str },
    /// A valid token with the scopes, but a claim condition of the route
    /// does not hold (the first that fails, in the order written): 403.
    ClaimNotMet { condition: &'r ClaimCondition },
    /// A valid token, but no route covers the request: 403 (default deny).
    NoRoute,
}

/// Decide what happens to a request that matched `route` (or nothing),
/// presented by `principal` (or nobody). `path` is the request's normalised
/// path, needed only by routes whose conditions read a captured segment
/// ([`Route::reads_path`]); without it such conditions fail.
pub fn decide<'r>(
    route: Option<&'r Route>,
    principal: Option<Principal<'_>>,
    path: Option<&NormalizedPath<'_>>,
) -> Decision<'r> {
    let Some(route) = route else {
        return match principal {
            None => Decision::Unauthenticated,
            Some(_) => Decision::NoRoute,
        };
    };
    let requirement = match &route.access {
        Access::Public => return Decision::Public,
        Access::Protected(requirement) => requirement,
    };
    let Some(principal) = principal else {
        return Decision::Unauthenticated;
    };
    if let Some(issuers) = &requirement.issuers {
        if !issuers.contains(&principal.issuer) {
            return Decision::IssuerNotAccepted;
        }
    }
    let has_all = requirement.all_scopes.iter().all(|s| principal.scopes.contains(s));
    let has_any =
        requirement.any_scopes.is_empty() || requirement.any_scopes.iter().any(|s| principal.scopes.contains(s));
    if !(has_all && has_any) {
        return Decision::InsufficientScope { required: &route.required_scope };
    }
    match requirement.claims.iter().find(|condition| !condition.holds(principal.claims, path)) {
        Some(condition) => Decision::ClaimNotMet { condition },
        None => Decision::Allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::PathPattern;
    use crate::route::{HostSet, MethodSet, Requirement, RouteSpec};

    fn route(access: Access) -> Route {
        Route::compile(RouteSpec {
            name: "r".into(),
            pattern: PathPattern::parse("/x").unwrap(),
            methods: MethodSet::Any,
            hosts: HostSet::default(),
            access,
            upstream: 0,
            rate_limits: Vec::new(),
        })
    }

    fn protected(all: &[&str], any: &[&str], issuers: Option<Vec<usize>>) -> Route {
        route(Access::Protected(Requirement {
            all_scopes: all.iter().map(|s| (*s).into()).collect(),
            any_scopes: any.iter().map(|s| (*s).into()).collect(),
            issuers: issuers.map(|v| v.into_iter().map(IssuerId).collect()),
            claims: Vec::new(),
        }))
    }

    const NO_CLAIMS: &ClaimValues = &ClaimValues(Vec::new());

    fn who(scopes: &ScopeSet) -> Option<Principal<'_>> {
        Some(Principal { issuer: IssuerId(0), scopes, claims: NO_CLAIMS })
    }

    #[test]
    fn default_deny() {
        let scopes = ScopeSet::new(["admin"]);
        assert_eq!(decide(None, None, None), Decision::Unauthenticated);
        assert_eq!(decide(None, who(&scopes), None), Decision::NoRoute);
    }

    #[test]
    fn public_routes_need_nothing() {
        assert_eq!(decide(Some(&route(Access::Public)), None, None), Decision::Public);
    }

    #[test]
    fn all_scopes_are_required() {
        let r = protected(&["a", "b"], &[], None);
        assert_eq!(decide(Some(&r), None, None), Decision::Unauthenticated);
        assert_eq!(decide(Some(&r), who(&ScopeSet::new(["a", "b", "c"])), None), Decision::Allow);
        assert_eq!(decide(Some(&r), who(&ScopeSet::new(["a"])), None), Decision::InsufficientScope { required: "a b" });
    }

    #[test]
    fn one_of_any_scopes_is_enough() {
        let r = protected(&[], &["admin", "superuser"], None);
        assert_eq!(decide(Some(&r), who(&ScopeSet::new(["superuser"])), None), Decision::Allow);
        assert_eq!(
            decide(Some(&r), who(&ScopeSet::new(["user"])), None),
            Decision::InsufficientScope { required: "admin superuser" }
        );
    }

    #[test]
    fn a_protected_route_without_scopes_needs_only_a_valid_token() {
        let r = protected(&[], &[], None);
        assert_eq!(decide(Some(&r), who(&ScopeSet::default()), None), Decision::Allow);
    }

    #[test]
    fn issuer_restriction() {
        let r = protected(&[], &[], Some(vec![1]));
        assert_eq!(decide(Some(&r), who(&ScopeSet::default()), None), Decision::IssuerNotAccepted);
        let scopes = ScopeSet::default();
        let p = Principal { issuer: IssuerId(1), scopes: &scopes, claims: NO_CLAIMS };
        assert_eq!(decide(Some(&r), Some(p), None), Decision::Allow);
    }

    #[test]
    fn claim_conditions_come_after_scopes_and_never_widen_them() {
        use crate::claims::{ClaimCondition, ClaimId, ClaimValue, Condition, Literal};
        let verified = ClaimCondition {
            claim: ClaimId(0),
            name: "email_verified".into(),
            condition: Condition::Equals(Literal::Bool(true)),
        };
        let mut r = protected(&["a"], &[], None);
        if let Access::Protected(req) = &mut r.access {
            req.claims.push(verified.clone());
        }
        let yes = ClaimValues(vec![Some(ClaimValue::Bool(true))]);
        let no = ClaimValues(vec![Some(ClaimValue::Bool(false))]);
        let scopes = ScopeSet::new(["a"]);
        let with = |claims| Some(Principal { issuer: IssuerId(0), scopes: &scopes, claims });
        assert_eq!(decide(Some(&r), with(&yes), None), Decision::Allow);
        assert_eq!(decide(Some(&r), with(&no), None), Decision::ClaimNotMet { condition: &verified });
        assert_eq!(decide(Some(&r), with(NO_CLAIMS), None), Decision::ClaimNotMet { condition: &verified });
        // Scopes are checked first: a satisfied condition does not make up for them.
        let none = ScopeSet::default();
        let weak = Some(Principal { issuer: IssuerId(0), scopes: &none, claims: &yes });
        assert_eq!(decide(Some(&r), weak, None), Decision::InsufficientScope { required: "a" });
    }

    #[test]
    fn scope_tokens_are_visible_ascii_without_quote_or_backslash() {
        assert!(is_scope_token("tasks:read") && is_scope_token("!") && is_scope_token("~[]#"));
        assert!(!is_scope_token(""));
        for bad in ["a b", "a\"b", "a\\b", "a\tb", "caf\u{e9}", "a\u{7f}"] {
            assert!(!is_scope_token(bad), "{bad:?}");
        }
        let allowed: Vec<u8> = (0..=255u8).filter(|b| is_scope_token(&char::from(*b).to_string())).collect();
        let expected: Vec<u8> = (0x21..=0x7e).filter(|b| *b != b'"' && *b != b'\\').collect();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn scope_sets_are_sorted_and_deduplicated() {
        let s = ScopeSet::new(["b", "a", "b", "", "a b", "q\"", "orders:read"]);
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b", "orders:read"]);
        assert_eq!(s.as_str(), "a b orders:read");
        assert_eq!(s.len(), 3);
        assert!(s.contains("a") && s.contains("orders:read") && !s.contains("c"));
        assert!(!s.contains("a b") && !s.contains("") && !s.contains("orders"), "whole scopes only");
        let none = ScopeSet::new([""]);
        assert!(none.is_empty() && !none.contains(""));
        assert_eq!(none.len(), 0);
        assert_eq!(none, ScopeSet::default());
    }
}
