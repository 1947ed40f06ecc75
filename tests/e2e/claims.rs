//! Claim conditions on routes against the real binary: the tenant example,
//! array and dotted-path claims, the answer and its metric, `explain`.

use harness::client::{get, get_with_token};
use harness::fixtures::{World, HS_ENV, HS_SECRET};
use harness::proxy::run_cli;
use serde_json::json;

/// The README's tenant route, plus a group route, in front of the standard ones.
fn world() -> World {
    World::start_configured(|config| {
        config
            .leading_route(&[
                ("path", "/tenants/{tenant}/**"),
                ("scopes", "[orders:read]"),
                ("claims", "{tenant: \"{tenant}\", email_verified: true}"),
            ])
            .leading_route(&[
                ("path", "/ops/**"),
                ("claims", "{groups: {any_of: [ops, sre]}, \"realm_access.roles\": {all_of: [operator]}, suspended: {exists: false}}"),
            ])
    })
}

/// A token for `tenant` with `orders:read` and whatever `extra` adds.
fn token(world: &World, tenant: serde_json::Value, extra: serde_json::Value) -> String {
    let mut claims = world.claims("alice", "orders:read");
    claims["tenant"] = tenant;
    claims["email_verified"] = json!(true);
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    world.rsa.sign(&claims)
}

#[test]
fn the_tenant_claim_must_equal_the_tenant_in_the_path() {
    let w = world();
    let acme = token(&w, json!("acme"), json!({}));
    let own = get_with_token(w.proxy.addr, "/tenants/acme/orders", &acme);
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(w.upstream.last().target, "/tenants/acme/orders");

    let other = get_with_token(w.proxy.addr, "/tenants/globex/orders", &acme);
    assert_eq!(other.status, 403);
    assert_eq!(other.json()["error"], "access_denied");
    assert!(other.header("www-authenticate").is_none(), "no RFC 6750 challenge for a claim condition");

    // An unverified e-mail fails the second condition.
    let unverified = token(&w, json!("acme"), json!({"email_verified": false}));
    assert_eq!(get_with_token(w.proxy.addr, "/tenants/acme/orders", &unverified).status, 403);
    // Scopes first: without orders:read it is insufficient_scope, whatever the tenant.
    let mut claims = w.claims("alice", "other");
    claims["tenant"] = json!("acme");
    claims["email_verified"] = json!(true);
    let weak = get_with_token(w.proxy.addr, "/tenants/acme/orders", &w.rsa.sign(&claims));
    assert_eq!((weak.status, weak.json()["error"].as_str()), (403, Some("insufficient_scope")));

    let metrics = w.proxy.metrics();
    assert!(metrics.contains("decision=\"claim_not_met\""), "{metrics}");
}

#[test]
fn encoded_tricks_in_the_tenant_segment_are_refused_or_denied() {
    let w = world();
    let acme = token(&w, json!("acme"), json!({}));
    let before = w.upstream.count();
    // Encoded unreserved characters decode to the same tenant: allowed, and
    // the upstream sees the canonical form.
    let encoded = get_with_token(w.proxy.addr, "/tenants/%61cme/orders", &acme);
    assert_eq!(encoded.status, 200);
    assert_eq!(w.upstream.last().target, "/tenants/acme/orders");
    // Another tenant dressed up, dot segments, encoded separators, case: never acme's.
    for path in [
        "/tenants/acme/../globex/orders",
        "/tenants/acme%2F..%2Fglobex/orders",
        "/tenants/%2e%2e/globex/orders",
        "/tenants/ACME/orders",
        "/tenants/acme%00/orders",
        "/tenants/acme%20/orders",
        "/tenants//orders",
    ] {
        let response = get_with_token(w.proxy.addr, path, &acme);
        assert!(matches!(response.status, 400 | 403), "{path}: {}", response.status);
    }
    assert_eq!(w.upstream.count(), before + 1, "only the canonical request was forwarded");

    // A numeric tenant claim matches its decimal form.
    let numeric = token(&w, json!(42), json!({}));
    assert_eq!(get_with_token(w.proxy.addr, "/tenants/42/x", &numeric).status, 200);
    assert_eq!(get_with_token(w.proxy.addr, "/tenants/42.0/x", &numeric).status, 403);
}

#[test]
fn array_dotted_path_and_presence_conditions() {
    let w = world();
    let sign = |extra: serde_json::Value| {
        let mut claims = w.claims("bob", "");
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        w.rsa.sign(&claims)
    };
    let roles = json!({"roles": ["operator", "viewer"]});
    let ok = sign(json!({"groups": ["dev", "sre"], "realm_access": roles}));
    assert_eq!(get_with_token(w.proxy.addr, "/ops/deploy", &ok).status, 200);
    let words = sign(json!({"groups": "dev ops", "realm_access": roles}));
    assert_eq!(get_with_token(w.proxy.addr, "/ops/deploy", &words).status, 200, "space-separated string claim");
    for (why, extra) in [
        ("no matching group", json!({"groups": ["dev"], "realm_access": roles})),
        ("no groups", json!({"realm_access": roles})),
        ("role missing", json!({"groups": ["ops"], "realm_access": {"roles": ["viewer"]}})),
        ("suspended present", json!({"groups": ["ops"], "realm_access": roles, "suspended": false})),
        ("groups of the wrong type", json!({"groups": 7, "realm_access": roles})),
    ] {
        assert_eq!(get_with_token(w.proxy.addr, "/ops/deploy", &sign(extra)).status, 403, "{why}");
    }
    // Without a token the answer is the usual 401.
    assert_eq!(get(w.proxy.addr, "/ops/deploy", &[]).status, 401);
}

#[test]
fn explain_shows_the_conditions_and_which_one_decides() {
    let w = world();
    let path = w.proxy.config_path.to_string_lossy().into_owned();
    let ask = |claims: &[&str]| {
        let mut args = vec!["explain", "-c", &path, "GET", "/tenants/acme/orders", "-s", "orders:read"];
        for claim in claims {
            args.extend(["--claim", claim]);
        }
        run_cli(&args, &[(HS_ENV, HS_SECRET)])
    };
    let (code, stdout, _) = ask(&["tenant=globex", "email_verified=true"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("whose claims satisfy: tenant = the path segment {tenant}; email_verified = true"),
        "{stdout}"
    );
    assert!(stdout.contains("403 access_denied"), "{stdout}");
    assert!(
        stdout.contains("[decision: claim_not_met] (decided by the condition: tenant = the path segment {tenant})"),
        "{stdout}"
    );
    let (_, stdout, _) = ask(&["tenant=acme", "email_verified=true"]);
    assert!(stdout.contains("and claims tenant=acme email_verified=true: 200-class"), "{stdout}");
    let (_, stdout, _) = ask(&["tenant=acme", "email_verified=\"true\""]);
    assert!(stdout.contains("(decided by the condition: email_verified = true)"), "{stdout}");
    let (code, stdout, _) = ask(&["nonsense=1"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("--claim 'nonsense': no route condition reads this claim"), "{stdout}");
}
