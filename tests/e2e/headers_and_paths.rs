//! What the upstream receives: identity headers from verified claims only,
//! and exactly the normalised path the policy decided on.

use harness::client::{get_with_token, send_raw};
use harness::fixtures::{hs_token, World};

#[test]
fn identity_headers_come_from_verified_claims() {
    let w = World::start();
    let mut claims = w.claims("alice", "tasks:write tasks:read");
    claims["email"] = "alice@example.com".into();
    let r = get_with_token(w.proxy.addr, "/todos/1", &w.rsa.sign(&claims));
    assert_eq!(r.status, 200);
    let seen = w.upstream.last();
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-auth-issuer"), Some(w.keys.issuer()));
    assert_eq!(seen.header("x-auth-scopes").as_deref(), Some("tasks:read tasks:write"));
    assert_eq!(seen.header("x-auth-email").as_deref(), Some("alice@example.com"));

    let r = get_with_token(w.proxy.addr, "/todos/1", &hs_token("bob", "tasks:read"));
    assert_eq!(r.status, 200);
    let seen = w.upstream.last();
    assert_eq!(seen.header("x-auth-subject").as_deref(), Some("bob"));
    assert_eq!(seen.header("x-auth-issuer").as_deref(), Some("local-issuer"));
    // A claim the token does not have is not invented.
    assert_eq!(seen.header("x-auth-email"), None);
}

#[test]
fn the_upstream_receives_exactly_the_normalised_path() {
    let w = World::start();
    let token = w.token("alice", "tasks:read");
    for (sent, received) in [
        ("/todos/42", "/todos/42"),
        ("//todos//42", "/todos/42"),
        ("/%74odos/%34%32", "/todos/42"),
        ("/todos/42/", "/todos/42/"),
        ("/todos/a%20b", "/todos/a%20b"),
        ("/todos/caf%c3%a9", "/todos/caf%C3%A9"),
        ("/todos/x%3Ay", "/todos/x:y"),
        ("/todos/42?q=%2e%2e/&x=1", "/todos/42?q=%2e%2e/&x=1"),
    ] {
        let raw =
            format!("GET {sent} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
        let r = send_raw(w.proxy.addr, raw.as_bytes()).expect("response");
        assert_eq!(r.status, 200, "{sent}: {}", r.text());
        assert_eq!(w.upstream.last().target, received, "{sent}");
    }
}
