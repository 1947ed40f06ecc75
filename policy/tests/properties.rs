//! Property tests for the policy crate: normalisation invariants, the route
//! table against a plain first-match scan, decisions and shadow detection.

use policy::{
    decide, normalize, Access, ClaimCondition, ClaimId, ClaimValue, ClaimValues, Condition, Decision, HostPattern,
    HostSet, IssuerId, Literal, Method, MethodSet, PathPattern, Principal, Requirement, RouteSpec, RouteTable,
    ScopeSet, Segment,
};
use proptest::prelude::*;

const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const HOSTS: [&str; 3] = ["a.com", "*.a.com", "b.a.com"];
const REQUEST_HOSTS: [&str; 3] = ["a.com", "b.a.com", "c.a.com"];

fn segment_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "todos", "x:y"]).prop_map(str::to_owned)
}

fn pattern_text() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => segment_text(),
        1 => Just("*".to_owned()),
        1 => Just("{id}".to_owned()),
    ];
    (prop::collection::vec(segment, 0..4), any::<bool>()).prop_map(|(segments, subtree)| {
        let mut text = String::new();
        for s in &segments {
            text.push('/');
            text.push_str(s);
        }
        if subtree {
            text.push_str("/**");
        }
        if text.is_empty() {
            text.push('/');
        }
        text
    })
}

fn method_set() -> impl Strategy<Value = MethodSet> {
    prop_oneof![
        1 => Just(MethodSet::Any),
        2 => prop::sample::subsequence(METHODS.to_vec(), 1..=3)
            .prop_map(|ms| MethodSet::Only(ms.into_iter().map(Method::new).collect())),
    ]
}

fn host_set() -> impl Strategy<Value = HostSet> {
    prop_oneof![
        2 => Just(HostSet::default()),
        1 => prop::sample::subsequence(HOSTS.to_vec(), 1..=2)
            .prop_map(|hs| HostSet(hs.into_iter().map(HostPattern::new).collect())),
    ]
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (pattern_text(), method_set(), host_set()).prop_map(|(path, methods, hosts)| RouteSpec {
        name: path.clone(),
        pattern: PathPattern::parse(&path).expect("generated patterns are valid"),
        methods,
        hosts,
        access: Access::Public,
        upstream: 0,
        rate_limits: Vec::new(),
    })
}

fn request_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment_text(), 0..5), any::<bool>()).prop_map(|(segments, trailing)| {
        let mut path = format!("/{}", segments.join("/"));
        if trailing && !segments.is_empty() {
            path.push('/');
        }
        path
    })
}

/// A concrete path that `pattern` was written for.
fn instance_of(pattern: &PathPattern, fill: &[String], extra: &[String]) -> String {
    let mut path = String::new();
    for (i, segment) in pattern.segments().iter().enumerate() {
        path.push('/');
        match segment {
            Segment::Literal(text) => path.push_str(text),
            Segment::Any { .. } => path.push_str(&fill[i % fill.len()]),
        }
    }
    if pattern.is_subtree() {
        for segment in extra {
            path.push('/');
            path.push_str(segment);
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

fn linear_first_match<'t>(
    table: &'t RouteTable,
    method: &str,
    host: Option<&str>,
    path: &policy::NormalizedPath<'_>,
) -> Option<&'t policy::Route> {
    table.routes().iter().find(|r| r.applies_to(method, host) && r.pattern.matches(path.segments()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn normalised_paths_are_canonical(raw in "\\PC{0,40}|(/(%[0-9a-fA-F]{2}|[a-z.;%\\\\/]){0,6}){0,6}") {
        if let Ok(path) = normalize(&raw) {
            let text = path.as_str();
            prop_assert!(text.starts_with('/'));
            prop_assert!(!text.contains("//"));
            for segment in text.split('/') {
                prop_assert!(segment != "." && segment != "..");
            }
            let upper = text.to_ascii_uppercase();
            for bad in ["%2F", "%5C", "%00", "%2E", "%25"] {
                // %25 may appear, but never followed by two hex digits.
                if bad == "%25" {
                    let double_encoded = upper.match_indices("%25").any(|(i, _)| {
                        upper.as_bytes().get(i + 3).is_some_and(u8::is_ascii_hexdigit)
                            && upper.as_bytes().get(i + 4).is_some_and(u8::is_ascii_hexdigit)
                    });
                    prop_assert!(!double_encoded, "double encoding in {}", text);
                } else {
                    prop_assert!(!upper.contains(bad), "{} in {}", bad, text);
                }
            }
            // Round trip: the forwarded form normalises to itself, unchanged.
            let again = normalize(text).expect("canonical form is accepted");
            prop_assert_eq!(again.as_str(), text);
            prop_assert!(!again.is_rewritten());
        }
    }

    #[test]
    fn table_agrees_with_a_linear_first_match_scan(
        specs in prop::collection::vec(route_spec(), 0..12),
        path in request_path(),
        method in prop::sample::select(METHODS.to_vec()),
        host in prop::option::of(prop::sample::select(REQUEST_HOSTS.to_vec())),
    ) {
        let table = RouteTable::new(specs);
        let path = normalize(&path).expect("generated paths are valid");
        let found = table.find(method, host, &path).map(|r| &*r.name as *const str);
        let expected = linear_first_match(&table, method, host, &path).map(|r| &*r.name as *const str);
        prop_assert_eq!(found, expected);
    }

    #[test]
    fn a_route_matches_the_paths_it_was_written_for(
        pattern in pattern_text(),
        fill in prop::collection::vec(segment_text(), 1..4),
        extra in prop::collection::vec(segment_text(), 0..3),
    ) {
        let pattern = PathPattern::parse(&pattern).unwrap();
        let path = instance_of(&pattern, &fill, &extra);
        let normalized = normalize(&path).unwrap();
        prop_assert!(pattern.matches(normalized.segments()), "{} should match {}", pattern, path);
        let spec = RouteSpec {
            name: "only".into(),
            pattern,
            methods: MethodSet::Any,
            hosts: HostSet::default(),
            access: Access::Public,
            upstream: 0,
            rate_limits: Vec::new(),
        };
        let table = RouteTable::new(vec![spec]);
        prop_assert!(table.find("GET", None, &normalized).is_some());
    }

    #[test]
    fn shadow_detection_is_sound(
        specs in prop::collection::vec(route_spec(), 1..10),
        fills in prop::collection::vec(prop::collection::vec(segment_text(), 1..4), 8),
        extra in prop::collection::vec(segment_text(), 0..3),
        host in prop::option::of(prop::sample::select(REQUEST_HOSTS.to_vec())),
    ) {
        let table = RouteTable::new(specs);
        for shadowed in table.shadowed() {
            let route = &table.routes()[shadowed.route];
            prop_assert!(shadowed.by < shadowed.route);
            for fill in &fills {
                let path = instance_of(&route.pattern, fill, &extra);
                let path = normalize(&path).unwrap();
                for method in METHODS {
                    if !route.applies_to(method, host) {
                        continue;
                    }
                    let found = table.find(method, host, &path).expect("the shadowing route matches");
                    prop_assert!(!std::ptr::eq(found, route), "route {} was reported shadowed but matched {}", route.name, path);
                }
            }
        }
    }

    #[test]
    fn decide_never_allows_without_the_required_scopes(
        all in prop::collection::vec(segment_text(), 0..3),
        any_of in prop::collection::vec(segment_text(), 0..3),
        held in prop::collection::vec(segment_text(), 0..5),
        issuers in prop::option::of(prop::collection::vec(0usize..3, 0..3)),
        issuer in 0usize..3,
    ) {
        let spec = RouteSpec {
            name: "r".into(),
            pattern: PathPattern::parse("/r").unwrap(),
            methods: MethodSet::Any,
            hosts: HostSet::default(),
            access: Access::Protected(Requirement {
                all_scopes: all.iter().map(|s| s.as_str().into()).collect(),
                any_scopes: any_of.iter().map(|s| s.as_str().into()).collect(),
                issuers: issuers.clone().map(|v| v.into_iter().map(IssuerId).collect()),
                claims: Vec::new(),
            }),
            upstream: 0,
            rate_limits: Vec::new(),
        };
        let table = RouteTable::new(vec![spec]);
        let route = &table.routes()[0];
        let scopes = ScopeSet::new(held.iter().map(String::as_str));
        let claims = ClaimValues::default();
        let principal = Principal { issuer: IssuerId(issuer), scopes: &scopes, claims: &claims };
        let decision = decide(Some(route), Some(principal), None);
        if decision == Decision::Allow {
            prop_assert!(all.iter().all(|s| held.contains(s)));
            prop_assert!(any_of.is_empty() || any_of.iter().any(|s| held.contains(s)));
            prop_assert!(issuers.is_none_or(|v| v.contains(&issuer)));
        }
        prop_assert_eq!(decide(Some(route), None, None), Decision::Unauthenticated);
    }

    #[test]
    fn claim_conditions_never_allow_what_scopes_alone_refuse(
        all in prop::collection::vec(segment_text(), 0..3),
        held in prop::collection::vec(segment_text(), 0..4),
        conditions in prop::collection::vec(condition(), 0..4),
        values in prop::collection::vec(prop::option::of(claim_value()), 0..4),
    ) {
        let requirement = |claims: Vec<ClaimCondition>| Requirement {
            all_scopes: all.iter().map(|s| s.as_str().into()).collect(),
            claims,
            ..Requirement::default()
        };
        let with = RouteTable::new(vec![spec_with(requirement(conditions.clone()))]);
        let without = RouteTable::new(vec![spec_with(requirement(Vec::new()))]);
        let scopes = ScopeSet::new(held.iter().map(String::as_str));
        let claims = ClaimValues(values);
        let principal = Principal { issuer: IssuerId(0), scopes: &scopes, claims: &claims };
        let path = normalize("/r/acme").unwrap();
        let decided = decide(Some(&with.routes()[0]), Some(principal), Some(&path));
        let by_scopes = decide(Some(&without.routes()[0]), Some(principal), Some(&path));
        if decided == Decision::Allow {
            prop_assert_eq!(by_scopes, Decision::Allow);
            prop_assert!(conditions.iter().all(|c| c.holds(&claims, Some(&path))));
        }
        if by_scopes != Decision::Allow {
            prop_assert_eq!(decided, by_scopes);
        }
    }

    #[test]
    fn captured_segments_compare_as_decoded_from_the_normalised_path(
        text in "[^/]{1,12}",
        upper in any::<bool>(),
    ) {
        // The segment sent fully percent-encoded, in either hex case.
        let encoded: String = text.bytes().map(|b| if upper { format!("%{b:02X}") } else { format!("%{b:02x}") }).collect();
        let condition = ClaimCondition {
            claim: ClaimId(0),
            name: "tenant".into(),
            condition: Condition::EqualsSegment { name: "tenant".into(), index: 1 },
        };
        if let Ok(path) = normalize(&format!("/t/{encoded}")) {
            let claim = |v: &str| ClaimValues(vec![Some(ClaimValue::String(v.into()))]);
            prop_assert!(condition.holds(&claim(&text), Some(&path)), "{} against {}", text, path);
            let longer = format!("{text}x");
            prop_assert!(!condition.holds(&claim(&longer), Some(&path)));
            prop_assert!(!condition.holds(&claim(&encoded), Some(&path)) || encoded == text);
        }
    }
}

fn spec_with(requirement: Requirement) -> RouteSpec {
    RouteSpec {
        name: "r".into(),
        pattern: PathPattern::parse("/r/{tenant}").unwrap(),
        methods: MethodSet::Any,
        hosts: HostSet::default(),
        access: Access::Protected(requirement),
        upstream: 0,
        rate_limits: Vec::new(),
    }
}

fn condition() -> impl Strategy<Value = ClaimCondition> {
    let words = || prop::collection::vec(segment_text().prop_map(|s| Box::<str>::from(s.as_str())), 1..3);
    let kind = prop_oneof![
        segment_text().prop_map(|s| Condition::Equals(Literal::String(s.into()))),
        any::<bool>().prop_map(|b| Condition::Equals(Literal::Bool(b))),
        Just(Condition::EqualsSegment { name: "tenant".into(), index: 1 }),
        words().prop_map(Condition::AnyOf),
        words().prop_map(Condition::AllOf),
        words().prop_map(Condition::NoneOf),
        any::<bool>().prop_map(Condition::Exists),
    ];
    (0usize..4, kind).prop_map(|(claim, condition)| ClaimCondition {
        claim: ClaimId(claim),
        name: "c".into(),
        condition,
    })
}

fn claim_value() -> impl Strategy<Value = ClaimValue> {
    prop_oneof![
        segment_text().prop_map(|s| ClaimValue::String(s.into())),
        Just(ClaimValue::String("acme".into())),
        any::<bool>().prop_map(ClaimValue::Bool),
        prop::collection::vec(segment_text().prop_map(|s| Box::<str>::from(s.as_str())), 0..3)
            .prop_map(|v| ClaimValue::List(v.into())),
        Just(ClaimValue::Other),
    ]
}
