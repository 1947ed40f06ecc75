//! Claim conditions: what a route requires of a verified token beyond its
//! scopes ("only your own tenant", "only verified e-mail", "members of ops").
//!
//! Conditions are data, not code: equality with a literal or with a path
//! segment the route's pattern captured, membership tests on arrays and
//! space-separated strings, and presence. Each refers to its claim by
//! [`ClaimId`], an index into the configuration's list of condition claims,
//! so an identity only keeps the values of claims some condition reads.
//! Anything that cannot be evaluated (a claim of another type, a missing
//! captured segment) fails the condition: closed, never open.

use std::fmt;

use crate::path::{hex_value, NormalizedPath};

/// Index of a claim in the configuration's list of condition claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimId(pub usize);

/// A claim's value as conditions see it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimValue {
    String(Box<str>),
    Number(f64),
    Bool(bool),
    /// An array; its string members (other members are left out).
    List(Box<[Box<str>]>),
    /// Present, of another type (object, null).
    Other,
}

/// The condition-claim values of one identity, by [`ClaimId`]; `None` where
/// the token does not have the claim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimValues(pub Vec<Option<ClaimValue>>);

impl ClaimValues {
    pub fn get(&self, id: ClaimId) -> Option<&ClaimValue> {
        self.0.get(id.0).and_then(Option::as_ref)
    }
}

/// A literal a claim must equal: strict types (the string `"true"` is not
/// `true`).
#[derive(Debug, Clone)]
pub enum Literal {
    String(Box<str>),
    Number(f64),
    Bool(bool),
}

impl PartialEq for Literal {
    fn eq(&self, other: &Literal) -> bool {
        match (self, other) {
            (Literal::String(a), Literal::String(b)) => a == b,
            // Bitwise: configuration never holds NaN (`config` refuses it).
            (Literal::Number(a), Literal::Number(b)) => a.to_bits() == b.to_bits(),
            (Literal::Bool(a), Literal::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Literal {}

/// What one claim must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Equals(Literal),
    /// Equals the path segment the pattern captured as `{name}` (at `index`
    /// among the path's segments), percent-decoded.
    EqualsSegment {
        name: Box<str>,
        index: usize,
    },
    /// At least one of these is a member.
    AnyOf(Vec<Box<str>>),
    /// Every one of these is a member.
    AllOf(Vec<Box<str>>),
    /// None of these is a member (an absent claim has no members).
    NoneOf(Vec<Box<str>>),
    /// The claim is present (`true`) or absent (`false`).
    Exists(bool),
}

/// One claim condition of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCondition {
    pub claim: ClaimId,
    /// The claim as the operator wrote it (`realm_access.roles`).
    pub name: Box<str>,
    pub condition: Condition,
}

impl ClaimCondition {
    /// Does `claims` satisfy the condition, for a request to `path`?
    pub fn holds(&self, claims: &ClaimValues, path: Option<&NormalizedPath<'_>>) -> bool {
        let value = claims.get(self.claim);
        match &self.condition {
            Condition::Exists(wanted) => value.is_some() == *wanted,
            Condition::Equals(literal) => value.is_some_and(|value| equals(value, literal)),
            Condition::EqualsSegment { index, .. } => {
                let segment = path.and_then(|path| path.segments().nth(*index)).and_then(decode_segment);
                match (value, segment) {
                    (Some(value), Some(segment)) => equals_text(value, &segment),
                    _ => false,
                }
            }
            Condition::AnyOf(wanted) => members(value).is_some_and(|m| wanted.iter().any(|w| m.contains(w))),
            Condition::AllOf(wanted) => members(value).is_some_and(|m| wanted.iter().all(|w| m.contains(w))),
            Condition::NoneOf(refused) => members(value).is_some_and(|m| !refused.iter().any(|r| m.contains(r))),
        }
    }

    /// Does the condition read a captured path segment?
    pub fn reads_path(&self) -> bool {
        matches!(self.condition, Condition::EqualsSegment { .. })
    }
}

fn equals(value: &ClaimValue, literal: &Literal) -> bool {
    match (value, literal) {
        (ClaimValue::String(a), Literal::String(b)) => a == b,
        (ClaimValue::Number(a), Literal::Number(b)) => a == b,
        (ClaimValue::Bool(a), Literal::Bool(b)) => a == b,
        _ => false,
    }
}

/// A string claim equal to `text`, or a whole-number claim whose decimal
/// form is `text` (tenant ids are often numbers).
fn equals_text(value: &ClaimValue, text: &str) -> bool {
    match value {
        ClaimValue::String(s) => **s == *text,
        ClaimValue::Number(n) => {
            n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 && format!("{}", *n as i64) == text
        }
        _ => false,
    }
}

/// The members a list condition tests: an array's strings, a string's
/// space-separated words, nothing for an absent claim; `None` (the
/// condition fails) for a claim of another type.
fn members(value: Option<&ClaimValue>) -> Option<Members<'_>> {
    match value {
        None => Some(Members::List(&[])),
        Some(ClaimValue::List(items)) => Some(Members::List(items)),
        Some(ClaimValue::String(text)) => Some(Members::Words(text)),
        Some(_) => None,
    }
}

enum Members<'v> {
    List(&'v [Box<str>]),
    Words(&'v str),
}

impl Members<'_> {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Members::List(items) => items.iter().any(|item| **item == *wanted),
            Members::Words(text) => text.split(' ').any(|word| word == wanted),
        }
    }
}

/// A canonical path segment, percent-decoded; `None` if the bytes are not
/// UTF-8. Normalisation has already refused every ambiguous encoding, so
/// the decoded form is unique.
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let (hi, lo) = (hex_value(bytes[i + 1])?, hex_value(bytes[i + 2])?);
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "{s:?}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for ClaimCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.name;
        let list = |items: &[Box<str>]| items.iter().map(|i| &**i).collect::<Vec<_>>().join(", ");
        match &self.condition {
            Condition::Equals(literal) => write!(f, "{name} = {literal}"),
            Condition::EqualsSegment { name: segment, .. } => write!(f, "{name} = the path segment {{{segment}}}"),
            Condition::AnyOf(items) => write!(f, "{name} has any of [{}]", list(items)),
            Condition::AllOf(items) => write!(f, "{name} has all of [{}]", list(items)),
            Condition::NoneOf(items) => write!(f, "{name} has none of [{}]", list(items)),
            Condition::Exists(true) => write!(f, "{name} is present"),
            Condition::Exists(false) => write!(f, "{name} is absent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::normalize;

    fn values(items: Vec<Option<ClaimValue>>) -> ClaimValues {
        ClaimValues(items)
    }

    fn condition(condition: Condition) -> ClaimCondition {
        ClaimCondition { claim: ClaimId(0), name: "c".into(), condition }
    }

    fn list(items: &[&str]) -> ClaimValue {
        ClaimValue::List(items.iter().map(|&i| i.into()).collect())
    }

    fn boxed(items: &[&str]) -> Vec<Box<str>> {
        items.iter().map(|&i| i.into()).collect()
    }

    #[test]
    fn equality_is_strict_about_types() {
        let yes = condition(Condition::Equals(Literal::Bool(true)));
        assert!(yes.holds(&values(vec![Some(ClaimValue::Bool(true))]), None));
        assert!(!yes.holds(&values(vec![Some(ClaimValue::String("true".into()))]), None));
        assert!(!yes.holds(&values(vec![None]), None));
        let seven = condition(Condition::Equals(Literal::Number(7.0)));
        assert!(seven.holds(&values(vec![Some(ClaimValue::Number(7.0))]), None));
        assert!(!seven.holds(&values(vec![Some(ClaimValue::String("7".into()))]), None));
        let acme = condition(Condition::Equals(Literal::String("acme".into())));
        assert!(acme.holds(&values(vec![Some(ClaimValue::String("acme".into()))]), None));
        assert!(!acme.holds(&values(vec![Some(ClaimValue::String("Acme".into()))]), None));
        assert!(!acme.holds(&values(vec![Some(list(&["acme"]))]), None));
    }

    #[test]
    fn captured_segments_compare_decoded_and_exact() {
        let tenant = condition(Condition::EqualsSegment { name: "tenant".into(), index: 1 });
        let claim = |v: &str| values(vec![Some(ClaimValue::String(v.into()))]);
        let path = normalize("/tenants/acme/orders").unwrap();
        assert!(tenant.holds(&claim("acme"), Some(&path)));
        assert!(!tenant.holds(&claim("ACME"), Some(&path)));
        assert!(!tenant.holds(&claim("other"), Some(&path)));
        // Unreserved escapes are decoded by normalisation, others here.
        let path = normalize("/tenants/%61cme").unwrap();
        assert!(tenant.holds(&claim("acme"), Some(&path)));
        let path = normalize("/tenants/a%20b").unwrap();
        assert!(tenant.holds(&claim("a b"), Some(&path)));
        assert!(!tenant.holds(&claim("a%20b"), Some(&path)));
        let path = normalize("/tenants/%C3%A9").unwrap();
        assert!(tenant.holds(&claim("é"), Some(&path)));
        // Whole numbers compare by their decimal form.
        let path = normalize("/tenants/42").unwrap();
        assert!(tenant.holds(&values(vec![Some(ClaimValue::Number(42.0))]), Some(&path)));
        assert!(!tenant.holds(&values(vec![Some(ClaimValue::Number(42.5))]), Some(&path)));
        // No segment, no path, no claim: closed.
        let short = normalize("/tenants").unwrap();
        assert!(!tenant.holds(&claim("tenants"), Some(&short)));
        assert!(!tenant.holds(&claim("acme"), None));
        assert!(!tenant.holds(&values(vec![None]), Some(&normalize("/tenants/acme").unwrap())));
    }

    #[test]
    fn membership_reads_arrays_and_space_separated_strings() {
        let any = condition(Condition::AnyOf(boxed(&["ops", "sre"])));
        assert!(any.holds(&values(vec![Some(list(&["dev", "sre"]))]), None));
        assert!(any.holds(&values(vec![Some(ClaimValue::String("dev ops".into()))]), None));
        assert!(!any.holds(&values(vec![Some(ClaimValue::String("devops".into()))]), None));
        assert!(!any.holds(&values(vec![None]), None));
        assert!(!any.holds(&values(vec![Some(ClaimValue::Number(1.0))]), None));
        let all = condition(Condition::AllOf(boxed(&["a", "b"])));
        assert!(all.holds(&values(vec![Some(list(&["b", "c", "a"]))]), None));
        assert!(!all.holds(&values(vec![Some(list(&["a"]))]), None));
        let none = condition(Condition::NoneOf(boxed(&["banned"])));
        assert!(none.holds(&values(vec![Some(list(&["a"]))]), None));
        assert!(none.holds(&values(vec![None]), None));
        assert!(!none.holds(&values(vec![Some(ClaimValue::String("x banned".into()))]), None));
        assert!(!none.holds(&values(vec![Some(ClaimValue::Bool(false))]), None));
    }

    #[test]
    fn presence() {
        let present = condition(Condition::Exists(true));
        let absent = condition(Condition::Exists(false));
        assert!(present.holds(&values(vec![Some(ClaimValue::Other)]), None));
        assert!(!present.holds(&values(vec![None]), None));
        assert!(absent.holds(&values(vec![None]), None));
        assert!(!absent.holds(&values(vec![Some(ClaimValue::Other)]), None));
        assert!(absent.holds(&ClaimValues::default(), None));
    }

    #[test]
    fn decoding_refuses_what_is_not_utf8() {
        assert_eq!(decode_segment("a%20b").as_deref(), Some("a b"));
        assert_eq!(decode_segment("%FF"), None);
        assert_eq!(decode_segment("plain"), Some("plain".to_owned()));
    }

    #[test]
    fn conditions_display_as_written() {
        let c = ClaimCondition {
            claim: ClaimId(0),
            name: "groups".into(),
            condition: Condition::AnyOf(boxed(&["ops", "sre"])),
        };
        assert_eq!(c.to_string(), "groups has any of [ops, sre]");
        let t = ClaimCondition {
            claim: ClaimId(1),
            name: "tenant".into(),
            condition: Condition::EqualsSegment { name: "tenant".into(), index: 1 },
        };
        assert_eq!(t.to_string(), "tenant = the path segment {tenant}");
    }
}
