//! The compiled route table: first match wins, in the operator's order.
//!
//! Routes are indexed in a segment trie so that matching costs about the
//! path's depth, not the number of routes; the answer is still the route
//! that a linear first-match scan would return (the lowest index among all
//! routes that match), which the property tests check.

use std::collections::HashMap;

use crate::path::{NormalizedPath, Segments};
use crate::pattern::{PathPattern, Segment};
use crate::route::{Route, RouteSpec};

/// A route that can never match because an earlier one covers every request
/// it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shadowed {
    pub route: usize,
    pub by: usize,
}

/// All routes, compiled once per configuration load.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    any: Option<Box<Node>>,
    /// Routes whose pattern ends exactly here, ascending.
    exact: Vec<usize>,
    /// Routes whose pattern ends here with `/**`, ascending.
    subtree: Vec<usize>,
    /// Lowest route index anywhere below (and at) this node; lets a search
    /// skip branches that cannot beat the best match found so far.
    min_route: usize,
}

impl RouteTable {
    /// Compile routes in priority order (index 0 is tried first).
    pub fn new(specs: Vec<RouteSpec>) -> RouteTable {
        let routes: Vec<Route> = specs.into_iter().map(Route::compile).collect();
        let mut root = Node { min_route: usize::MAX, ..Node::default() };
        for (index, route) in routes.iter().enumerate() {
            root.insert(&route.pattern, index);
        }
        RouteTable { routes, root }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The first route that applies to this method, host and path.
    /// `host` must be normalised ([`crate::normalize_host`]).
    pub fn find(&self, method: &str, host: Option<&str>, path: &NormalizedPath<'_>) -> Option<&Route> {
        self.find_index(method, host, path).map(|index| &self.routes[index])
    }

    /// Like [`RouteTable::find`], giving the route's position in the table.
    pub fn find_index(&self, method: &str, host: Option<&str>, path: &NormalizedPath<'_>) -> Option<usize> {
        let mut best = None;
        let applies = |index: usize| self.routes[index].applies_to(method, host);
        self.root.search(path.segments(), &mut best, &applies);
        best
    }

    /// Routes that can never match, each with the earlier route that covers it.
    pub fn shadowed(&self) -> Vec<Shadowed> {
        let mut found = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            let mut candidates = Vec::new();
            self.root.covering(route.pattern.segments(), route.pattern.is_subtree(), &mut candidates);
            candidates.sort_unstable();
            let by = candidates
                .into_iter()
                .filter(|&earlier| earlier < index)
                .find(|&earlier| route.is_shadowed_by(&self.routes[earlier]));
            if let Some(by) = by {
                found.push(Shadowed { route: index, by });
            }
        }
        found
    }
}

impl Node {
    fn insert(&mut self, pattern: &PathPattern, index: usize) {
        let mut node = self;
        node.min_route = node.min_route.min(index);
        for segment in pattern.segments() {
            node = match segment {
                Segment::Literal(text) => node
                    .literal
                    .entry(text.clone())
                    .or_insert_with(|| Node { min_route: usize::MAX, ..Node::default() }),
                Segment::Any { .. } => {
                    node.any.get_or_insert_with(|| Box::new(Node { min_route: usize::MAX, ..Node::default() }))
                }
            };
            node.min_route = node.min_route.min(index);
        }
        if pattern.is_subtree() {
            node.subtree.push(index);
        } else {
            node.exact.push(index);
        }
    }

    fn search(&self, mut path: Segments<'_>, best: &mut Option<usize>, applies: &impl Fn(usize) -> bool) {
        if best.is_some_and(|b| self.min_route >= b) {
            return;
        }
        take_first(&self.subtree, best, applies);
        match path.next() {
            None => take_first(&self.exact, best, applies),
            Some(segment) => {
                if let Some(child) = self.literal.get(segment) {
                    child.search(path.clone(), best, applies);
                }
                if let Some(child) = &self.any {
                    child.search(path, best, applies);
                }
            }
        }
    }

    /// Collect routes whose pattern covers a pattern with these segments.
    fn covering(&self, segments: &[Segment], subtree: bool, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.subtree);
        match segments.split_first() {
            None => {
                if !subtree {
                    out.extend_from_slice(&self.exact);
                }
            }
            Some((first, rest)) => {
                if let Segment::Literal(text) = first {
                    if let Some(child) = self.literal.get(text) {
                        child.covering(rest, subtree, out);
                    }
                }
                if let Some(child) = &self.any {
                    child.covering(rest, subtree, out);
                }
            }
        }
    }
}

/// Lower `best` to the first route in `candidates` that applies, if any beats it.
fn take_first(candidates: &[usize], best: &mut Option<usize>, applies: &impl Fn(usize) -> bool) {
    for &index in candidates {
        if best.is_some_and(|b| index >= b) {
            return;
        }
        if applies(index) {
            *best = Some(index);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::normalize;
    use crate::route::{Access, HostPattern, HostSet, Method, MethodSet, Requirement};

    pub(crate) fn spec(name: &str, path: &str, methods: &[&str]) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            pattern: PathPattern::parse(path).unwrap(),
            methods: if methods.is_empty() {
                MethodSet::Any
            } else {
                MethodSet::Only(methods.iter().map(|m| Method::new(m)).collect())
            },
            hosts: HostSet::default(),
            access: Access::Protected(Requirement::default()),
            upstream: 0,
            rate_limits: Vec::new(),
        }
    }

    fn find<'t>(table: &'t RouteTable, method: &str, path: &str) -> Option<&'t str> {
        let path = normalize(path).unwrap();
        table.find(method, None, &path).map(|r| &*r.name)
    }

    #[test]
    fn first_match_wins_in_file_order() {
        let table = RouteTable::new(vec![
            spec("health", "/healthz", &[]),
            spec("read", "/todos/**", &["GET"]),
            spec("write", "/todos/**", &["POST", "DELETE"]),
            spec("one", "/todos/{id}", &[]),
            spec("all", "/**", &["GET"]),
        ]);
        assert_eq!(find(&table, "GET", "/healthz"), Some("health"));
        assert_eq!(find(&table, "GET", "/todos/1"), Some("read"));
        assert_eq!(find(&table, "POST", "/todos"), Some("write"));
        assert_eq!(find(&table, "PUT", "/todos/1"), Some("one"));
        assert_eq!(find(&table, "GET", "/other"), Some("all"));
        assert_eq!(find(&table, "POST", "/other"), None);
        assert_eq!(find(&table, "PUT", "/todos/1/x"), None);
    }

    #[test]
    fn trailing_slash_matches_like_the_bare_path() {
        let table = RouteTable::new(vec![spec("admin", "/admin", &[]), spec("rest", "/**", &[])]);
        assert_eq!(find(&table, "GET", "/admin/"), Some("admin"));
        assert_eq!(find(&table, "GET", "//admin//"), Some("admin"));
    }

    #[test]
    fn hosts_restrict_routes() {
        let mut api = spec("api", "/**", &[]);
        api.hosts = HostSet(vec![HostPattern::new("api.example.com")]);
        let table = RouteTable::new(vec![api, spec("fallback", "/**", &[])]);
        let path = normalize("/x").unwrap();
        assert_eq!(&*table.find("GET", Some("api.example.com"), &path).unwrap().name, "api");
        assert_eq!(&*table.find("GET", Some("other.example.com"), &path).unwrap().name, "fallback");
        assert_eq!(&*table.find("GET", None, &path).unwrap().name, "fallback");
    }

    #[test]
    fn detects_shadowed_routes() {
        let table = RouteTable::new(vec![
            spec("all-get", "/**", &["GET"]),
            spec("todos-get", "/todos", &["GET"]),
            spec("todos-post", "/todos", &["POST"]),
            spec("todos-any", "/todos/*", &[]),
            spec("todos-one", "/todos/{id}", &["PUT"]),
        ]);
        assert_eq!(table.shadowed(), vec![Shadowed { route: 1, by: 0 }, Shadowed { route: 4, by: 3 }]);
    }
}
