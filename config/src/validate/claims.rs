//! A route's claim conditions. Each claim path is listed once in
//! `Config::condition_claims` and conditions refer to it by index, so a
//! verified identity keeps exactly the claims some condition reads. Every
//! condition is checked against the route's pattern: a `"{name}"` the
//! pattern does not capture, an empty list or a mapping with no (or two)
//! operators is an error, never a condition that silently never holds.

use policy::{ClaimCondition, ClaimId, Condition, Literal, PathPattern, Segment};
use serde_saphyr::Spanned;

use super::values::claim_path;
use crate::diag::Reporter;
use crate::file::{ClaimConditionFile, ClaimOperatorsFile, OrderedMap, Text};
use crate::model::ClaimPath;

/// The conditions of one route, in the order written.
pub(super) fn claim_conditions(
    file: &OrderedMap<Spanned<ClaimConditionFile>>,
    pattern: Option<&PathPattern>,
    claims: &mut Vec<ClaimPath>,
    r: &mut Reporter<'_>,
) -> Vec<ClaimCondition> {
    let mut out = Vec::new();
    for (name, written) in &file.0 {
        let Some(path) = claim_path(name, r) else { continue };
        let Some(condition) = condition(written, pattern, r) else { continue };
        let claim = ClaimId(claims.iter().position(|c| *c == path).unwrap_or_else(|| {
            claims.push(path);
            claims.len() - 1
        }));
        out.push(ClaimCondition { claim, name: name.value.as_str().into(), condition });
    }
    out
}

fn condition(
    written: &Spanned<ClaimConditionFile>,
    pattern: Option<&PathPattern>,
    r: &mut Reporter<'_>,
) -> Option<Condition> {
    match &written.value {
        ClaimConditionFile::Bool(b) => Some(Condition::Equals(Literal::Bool(*b))),
        ClaimConditionFile::Number(n) if n.is_finite() => Some(Condition::Equals(Literal::Number(*n))),
        ClaimConditionFile::Number(_) => {
            r.error(written, "a claim can only equal a finite number");
            None
        }
        ClaimConditionFile::String(text) => string_condition(text, written, pattern, r),
        ClaimConditionFile::Mapping(operators) => operator_condition(operators, written, r),
    }
}

/// `"{name}"` is the segment the pattern captured as `{name}`; any other
/// string is a literal.
fn string_condition(
    text: &str,
    written: &Spanned<ClaimConditionFile>,
    pattern: Option<&PathPattern>,
    r: &mut Reporter<'_>,
) -> Option<Condition> {
    if let Some(name) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        // Without a valid pattern (already reported) the capture cannot be checked.
        let pattern = pattern?;
        let captured = captured_segments(pattern);
        return match captured.iter().find(|(captured, _)| *captured == name) {
            Some((_, index)) => Some(Condition::EqualsSegment { name: name.into(), index: *index }),
            None => {
                let names: Vec<String> = captured.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                let known = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                r.error(written, format!("the path pattern captures no '{{{name}}}' (it captures: {known})"));
                None
            }
        };
    }
    if text == "true" || text == "false" {
        r.warn(written, format!("'{text}' in quotes matches only the string; write {text} to match a boolean claim"));
    }
    Some(Condition::Equals(Literal::String(text.into())))
}

/// The named segments of a pattern with their positions in the path.
fn captured_segments(pattern: &PathPattern) -> Vec<(&str, usize)> {
    pattern
        .segments()
        .iter()
        .enumerate()
        .filter_map(|(index, segment)| match segment {
            Segment::Any { name: Some(name) } => Some((&**name, index)),
            _ => None,
        })
        .collect()
}

/// `Condition::AnyOf`, `AllOf` or `NoneOf`.
type MembershipCondition = fn(Vec<Box<str>>) -> Condition;

fn operator_condition(
    operators: &ClaimOperatorsFile,
    written: &Spanned<ClaimConditionFile>,
    r: &mut Reporter<'_>,
) -> Option<Condition> {
    let given = [
        operators.any_of.is_some(),
        operators.all_of.is_some(),
        operators.none_of.is_some(),
        operators.exists.is_some(),
    ];
    match given.iter().filter(|&&g| g).count() {
        0 => {
            r.error(written, "give one of any_of, all_of, none_of or exists");
            return None;
        }
        1 => {}
        _ => {
            r.error(written, "one operator per claim: any_of, all_of, none_of and exists cannot be combined");
            return None;
        }
    }
    if let Some(exists) = &operators.exists {
        return Some(Condition::Exists(exists.value));
    }
    let (list, make): (&[Text], MembershipCondition) = match (&operators.any_of, &operators.all_of, &operators.none_of)
    {
        (Some(list), _, _) => (list, Condition::AnyOf),
        (_, Some(list), _) => (list, Condition::AllOf),
        (_, _, Some(list)) => (list, Condition::NoneOf),
        _ => return None,
    };
    if list.is_empty() {
        r.error(written, "an empty list: any_of and all_of could never be decided by it, none_of would mean nothing");
        return None;
    }
    let mut values = Vec::with_capacity(list.len());
    for item in list {
        if item.value.is_empty() {
            r.error(item, "an empty string is never a member");
            return None;
        }
        values.push(item.value.as_str().into());
    }
    Some(make(values))
}
