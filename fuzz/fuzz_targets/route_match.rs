//! Route tables built from generated patterns, against generated paths.
//!
//! Invariants:
//! - a generated pattern parses, and its Display form parses back to it;
//! - `find_index` (the segment trie) equals a linear first-match scan of
//!   `routes()` using `applies_to` and `pattern.matches`, for every path,
//!   method and host tried, including an instance of every pattern;
//! - `is_covered_by` is sound: if pattern A is covered by B, every path A
//!   matches, B matches too;
//! - every route `shadowed()` reports is never the answer, and whenever it
//!   would match on its own, the route said to shadow it matches too.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use policy::{
    normalize, Access, HostPattern, HostSet, Method, MethodSet, PathPattern, Requirement, RouteSpec, RouteTable,
};

/// Literal segments: a small alphabet so that patterns and paths collide.
const LITERALS: [&str; 6] = ["a", "b", "c", "x:y", "~u", "a.b"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const HOST_SETS: [&[&str]; 4] = [&[], &["api.example.com"], &["*.example.com"], &["api.example.com", "other.org"]];
const HOSTS: [Option<&str>; 5] =
    [None, Some("api.example.com"), Some("x.example.com"), Some("example.com"), Some("other.org")];

#[derive(Debug, Arbitrary)]
enum PatternSegment {
    Literal(u8),
    Star,
    Named,
}

#[derive(Debug, Arbitrary)]
struct GenRoute {
    segments: Vec<PatternSegment>,
    subtree: bool,
    /// Bit i set: method i is allowed; 0 means any method.
    methods: u8,
    hosts: u8,
}

#[derive(Debug, Arbitrary)]
struct GenPath {
    /// Indices into LITERALS; values past it become a segment no pattern names.
    segments: Vec<u8>,
    trailing_slash: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    routes: Vec<GenRoute>,
    paths: Vec<GenPath>,
}

fn literal(index: u8) -> &'static str {
    LITERALS.get(usize::from(index)).copied().unwrap_or("zz")
}

fn pattern_text(route: &GenRoute) -> String {
    let mut text = String::new();
    for (i, segment) in route.segments.iter().enumerate() {
        text.push('/');
        match segment {
            PatternSegment::Literal(l) => text.push_str(LITERALS[usize::from(*l) % LITERALS.len()]),
            PatternSegment::Star => text.push('*'),
            PatternSegment::Named => text.push_str(&format!("{{p{i}}}")),
        }
    }
    if route.subtree {
        text.push_str("/**");
    }
    if text.is_empty() {
        text.push('/');
    }
    text
}

fn linear(table: &RouteTable, method: &str, host: Option<&str>, segments: &[&str]) -> Option<usize> {
    table
        .routes()
        .iter()
        .position(|route| route.applies_to(method, host) && route.pattern.matches(segments.iter().copied()))
}

fuzz_target!(|input: Input| {
    if input.routes.len() > 32 || input.paths.len() > 32 {
        return;
    }
    if input.routes.iter().any(|r| r.segments.len() > 8) || input.paths.iter().any(|p| p.segments.len() > 10) {
        return;
    }
    let mut specs = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for (index, route) in input.routes.iter().enumerate() {
        let text = pattern_text(route);
        let pattern = PathPattern::parse(&text).unwrap_or_else(|e| panic!("{text:?} refused: {e}"));
        assert_eq!(pattern.to_string(), text, "Display does not round-trip");
        assert_eq!(PathPattern::parse(&pattern.to_string()).as_ref(), Ok(&pattern));
        // An instance of the pattern, and one a segment longer.
        let instance: String = pattern
            .segments()
            .iter()
            .map(|s| match s {
                policy::Segment::Literal(l) => format!("/{l}"),
                policy::Segment::Any { .. } => "/zz".to_owned(),
            })
            .collect();
        paths.push(if instance.is_empty() { "/".to_owned() } else { instance.clone() });
        paths.push(format!("{instance}/b"));
        let methods = if route.methods & 0x0f == 0 {
            MethodSet::Any
        } else {
            MethodSet::Only(
                METHODS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| route.methods & (1 << i) != 0)
                    .map(|(_, m)| Method::new(m))
                    .collect(),
            )
        };
        let hosts = HOST_SETS[usize::from(route.hosts) % HOST_SETS.len()];
        specs.push(RouteSpec {
            name: format!("r{index}"),
            pattern,
            methods,
            hosts: HostSet(hosts.iter().map(|h| HostPattern::new(h)).collect()),
            access: Access::Protected(Requirement::default()),
            upstream: 0,
            rate_limits: Vec::new(),
        });
    }
    for path in &input.paths {
        let mut text: String = path.segments.iter().map(|&s| format!("/{}", literal(s))).collect();
        if path.trailing_slash || text.is_empty() {
            text.push('/');
        }
        paths.push(text);
    }

    let table = RouteTable::new(specs);
    let shadowed = table.shadowed();
    let routes = table.routes();

    for raw in &paths {
        let path = normalize(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"));
        let segments: Vec<&str> = path.segments().collect();
        for a in routes {
            for b in routes {
                if a.pattern.is_covered_by(&b.pattern) && a.pattern.matches(segments.iter().copied()) {
                    assert!(
                        b.pattern.matches(segments.iter().copied()),
                        "{} claimed covered by {} but {raw:?} matches only the first",
                        a.pattern,
                        b.pattern
                    );
                }
            }
        }
        for method in METHODS {
            for host in HOSTS {
                let found = table.find_index(method, host, &path);
                assert_eq!(found, linear(&table, method, host, &segments), "{method} {host:?} {raw:?}");
                for s in &shadowed {
                    assert_ne!(found, Some(s.route), "{method} {host:?} {raw:?} matched shadowed route {s:?}");
                    let own = &routes[s.route];
                    if own.applies_to(method, host) && own.pattern.matches(segments.iter().copied()) {
                        let by = &routes[s.by];
                        assert!(
                            by.applies_to(method, host) && by.pattern.matches(segments.iter().copied()),
                            "{s:?}: {method} {host:?} {raw:?} matches route {} but not its shadower {}",
                            own.pattern,
                            by.pattern
                        );
                    }
                }
            }
        }
    }
});
