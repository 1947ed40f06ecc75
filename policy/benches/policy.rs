//! Micro-benchmarks: path normalisation, route matching at 10 / 1,000 /
//! 100,000 routes, and `decide`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use policy::{
    decide, normalize, Access, ClaimValues, IssuerId, Method, MethodSet, PathPattern, Principal, Requirement,
    RouteSpec, RouteTable, ScopeSet,
};

/// `n` routes shaped like a real API: per-service read and write routes with
/// an id segment, and a catch-all at the end.
fn table(n: usize) -> RouteTable {
    let mut specs = Vec::with_capacity(n);
    for i in 0..n.saturating_sub(1) {
        let (path, method, scope) = match i % 3 {
            0 => (format!("/svc{}/v1/items/**", i / 3), "GET", "items:read"),
            1 => (format!("/svc{}/v1/items/{{id}}", i / 3), "PUT", "items:write"),
            _ => (format!("/svc{}/v1/admin/*", i / 3), "POST", "admin"),
        };
        specs.push(RouteSpec {
            name: format!("route-{i}"),
            pattern: PathPattern::parse(&path).unwrap(),
            methods: MethodSet::Only(vec![Method::new(method)]),
            hosts: Default::default(),
            access: Access::Protected(Requirement { all_scopes: vec![scope.into()], ..Requirement::default() }),
            upstream: 0,
            rate_limits: Vec::new(),
        });
    }
    specs.push(RouteSpec {
        name: "health".into(),
        pattern: PathPattern::parse("/healthz").unwrap(),
        methods: MethodSet::Any,
        hosts: Default::default(),
        access: Access::Public,
        upstream: 0,
        rate_limits: Vec::new(),
    });
    RouteTable::new(specs)
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    for n in [10usize, 1_000, 100_000] {
        let table = table(n);
        let middle = format!("/svc{}/v1/items/42", n / 6);
        let hit = normalize(&middle).unwrap().into_owned();
        let miss = normalize("/nothing/here/at/all").unwrap();
        group.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
            b.iter(|| black_box(table.find(black_box("GET"), None, black_box(&hit))))
        });
        group.bench_with_input(BenchmarkId::new("miss", n), &n, |b, _| {
            b.iter(|| black_box(table.find(black_box("GET"), None, black_box(&miss))))
        });
    }
    group.finish();
}

fn normalising(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    group.bench_function("canonical", |b| b.iter(|| black_box(normalize(black_box("/api/v1/todos/42/items")))));
    group.bench_function("escaped", |b| b.iter(|| black_box(normalize(black_box("/api//v1/%74odos/caf%c3%a9/")))));
    group.finish();
}

fn deciding(c: &mut Criterion) {
    let table = table(10);
    let route = &table.routes()[0];
    let scopes = ScopeSet::new(["openid", "profile", "items:read", "items:write", "email"]);
    let claims = ClaimValues::default();
    let principal = Principal { issuer: IssuerId(0), scopes: &scopes, claims: &claims };
    c.bench_function("decide/allow", |b| b.iter(|| black_box(decide(Some(black_box(route)), Some(principal), None))));
    let few = ScopeSet::new(["openid"]);
    let weak = Principal { issuer: IssuerId(0), scopes: &few, claims: &claims };
    c.bench_function("decide/insufficient_scope", |b| {
        b.iter(|| black_box(decide(Some(black_box(route)), Some(weak), None)))
    });
}

criterion_group!(benches, matching, normalising, deciding);
criterion_main!(benches);
