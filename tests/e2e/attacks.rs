//! The attack suite: one module per class of mistake that has let attackers
//! through other auth proxies, several variants each, against the real
//! binary. The README's security section states the rule each one proves.

/// Status of `GET /todos/1` with `token`.
fn status(w: &harness::fixtures::World, token: &str) -> u16 {
    harness::client::get_with_token(w.proxy.addr, "/todos/1", token).status
}

/// Forged tokens: `alg: none`, HMAC with a public key, keys named in the token, unknown `crit`, a known `kid` with another key, mangled segments, oversized tokens.
mod token_forgery {
    use super::status;
    use harness::client::get_with_token;
    use harness::fixtures::{World, HS_SECRET};
    use harness::keys::{forge, forge_hs256, TestKey};
    use jsonwebtoken::{Algorithm, Header};
    use serde_json::json;

    #[test]
    fn alg_none_is_never_accepted_in_any_casing() {
        let w = World::start();
        let payload = w.claims("root", "tasks:read admin");
        for alg in ["none", "None", "NONE", "nOnE"] {
            for signature in [&b""[..], b"x"] {
                let token = forge(&json!({"alg": alg, "kid": "rsa-1", "typ": "JWT"}), &payload, signature);
                let r = get_with_token(w.proxy.addr, "/todos/1", &token);
                assert_eq!(r.status, 401, "alg {alg}");
                assert!(r.json()["error_description"].as_str().unwrap_or_default().contains("algorithm"));
            }
        }
        // Two-part "unsecured" form.
        let token = format!("{}.", forge(&json!({"alg": "none"}), &payload, b"").trim_end_matches('.'));
        assert_eq!(status(&w, &token), 401);
        assert_eq!(w.upstream.count(), 0);
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_refused() {
        let w = World::start();
        let public = w.rsa.public_der.clone().expect("RSA public key");
        let payload = w.claims("root", "tasks:read admin");
        let header = json!({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"});
        // Both DER and PEM forms of the public key as the HMAC secret.
        let pem =
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", harness::keys::pem_body(&public));
        for secret in [public.as_slice(), pem.as_bytes()] {
            assert_eq!(status(&w, &forge_hs256(&header, &payload, secret)), 401);
        }
        // Nor is an HS256 token claiming the RSA issuer, signed with the HMAC
        // issuer's own secret.
        assert_eq!(status(&w, &forge_hs256(&header, &payload, HS_SECRET.as_bytes())), 401);
        assert_eq!(w.upstream.count(), 0);
    }

    #[test]
    fn header_tricks_are_refused() {
        let w = World::start();
        let attacker = TestKey::rsa("attacker");
        let payload = w.claims("root", "admin tasks:read");
        // Embedded jwk / jku / x5u pointing at the attacker's key: keys come
        // only from the issuer's JWKS.
        for (name, value) in [
            ("jwk", attacker.jwk.clone()),
            ("jku", json!("http://127.0.0.1:1/attacker-jwks")),
            ("x5u", json!("http://127.0.0.1:1/attacker.pem")),
        ] {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("attacker".into());
            match name {
                "jwk" => header.jwk = serde_json::from_value(value).ok(),
                "jku" => header.jku = value.as_str().map(str::to_owned),
                _ => header.x5u = value.as_str().map(str::to_owned),
            }
            assert_eq!(status(&w, &attacker.sign_with_header(&header, &payload)), 401, "{name}");
        }
        // Same kid, another key.
        assert_eq!(status(&w, &attacker.with_kid("rsa-1").sign(&payload)), 401);
        // Unknown critical header parameter.
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let token = w.rsa.sign_with_header(&header, &payload);
        let [_, body, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        use base64::Engine;
        let crit_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"alg":"RS256","kid":"rsa-1","crit":["exp"],"exp":1}).to_string());
        assert_eq!(status(&w, &format!("{crit_header}.{body}.{signature}")), 401);
        assert_eq!(w.upstream.count(), 0);
    }

    #[test]
    fn truncated_or_extended_segments_are_refused() {
        let w = World::start();
        let token = w.token("alice", "tasks:read");
        let parts: Vec<&str> = token.split('.').collect();
        let cases = [
            format!("{}.{}", parts[0], parts[1]),
            format!("{}.{}.", parts[0], parts[1]),
            format!("{token}.extra"),
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 4]),
            format!("{}.{}x.{}", parts[0], parts[1], parts[2]),
            format!("{token}="),
        ];
        for case in &cases {
            assert_eq!(status(&w, case), 401, "{case}");
        }
        assert_eq!(status(&w, &token), 200);
    }

    #[test]
    fn an_oversized_token_is_counted_and_logged_as_invalid_token() {
        let w = World::start_configured(|c| c.main_option("log_format", "json").extra("tokens:\n  max_bytes: 2048\n"));
        let mut big = w.claims("alice", "tasks:read");
        big["padding"] = "x".repeat(3000).into();
        assert_eq!(status(&w, &w.rsa.sign(&big)), 401);
        // Counted and logged once the answer is written (the logging phase).
        let series = "portcullis_requests_total{decision=\"invalid_token\",route=\"GET /todos/**\"} 1";
        let access_line = || w.proxy.logs().lines().find(|l| l.contains("portcullis::access")).map(str::to_owned);
        let done = || w.proxy.metrics().contains(series) && access_line().is_some();
        assert!(harness::wait_until(std::time::Duration::from_secs(5), done), "{}", w.proxy.metrics());
        assert!(!w.proxy.metrics().contains("decision=\"bad_request\""));
        let line = access_line().unwrap_or_default();
        assert!(line.contains("\"decision\":\"invalid_token\""), "{line}");
        assert_eq!(w.upstream.count(), 0);
    }
}

/// Claims: `exp`, `nbf`, `iss`, `aud`, their types, and `typ`.
mod claim_checks {
    use super::status;
    use harness::fixtures::{World, AUDIENCE};
    use harness::now;
    use serde_json::json;

    #[test]
    fn claim_checks() {
        let w = World::start();
        let t = now();
        let mut cases: Vec<(&str, serde_json::Value)> = Vec::new();
        let base = w.claims("alice", "tasks:read");
        let with = |key: &str, value: serde_json::Value| {
            let mut c = base.clone();
            c[key] = value;
            c
        };
        let without = |key: &str| {
            let mut c = base.clone();
            c.as_object_mut().unwrap().remove(key);
            c
        };
        cases.push(("expired", with("exp", (t - 120).into())));
        cases.push(("exp as string", with("exp", (t + 3600).to_string().into())));
        cases.push(("no exp", without("exp")));
        cases.push(("nbf in the future", with("nbf", (t + 600).into())));
        cases.push(("nbf as string", with("nbf", (t - 600).to_string().into())));
        cases.push(("no iss", without("iss")));
        cases.push(("wrong iss", with("iss", "https://evil.example.com".into())));
        cases.push(("iss with trailing slash", with("iss", format!("{}/", w.keys.issuer()).into())));
        cases.push(("no aud", without("aud")));
        cases.push(("wrong aud", with("aud", "other-api".into())));
        cases.push(("aud list without ours", with("aud", json!(["a", "b"]))));
        for (case, claims) in cases {
            assert_eq!(status(&w, &w.rsa.sign(&claims)), 401, "{case}");
        }
        // Within leeway (30 s) and audience lists that include ours are fine.
        assert_eq!(status(&w, &w.rsa.sign(&with("exp", (t - 5).into()))), 200);
        assert_eq!(status(&w, &w.rsa.sign(&with("aud", json!(["other", AUDIENCE])))), 200);
        assert_eq!(w.upstream.count(), 2);
    }
}

mod token_types {
    use harness::client::get_with_token;
    use harness::config::TestConfig;
    use harness::fixtures::AUDIENCE;
    use harness::keys::{claims, jwks, TestKey};
    use harness::proxy::Proxy;
    use harness::servers::{KeyServer, Upstream};
    use jsonwebtoken::{Algorithm, Header};

    #[test]
    fn typ_is_checked_when_pinned() {
        let upstream = Upstream::start("api");
        let key = TestKey::rsa("rsa-1");
        let keys = KeyServer::start(jwks(&[&key]));
        let config =
            TestConfig::new(&keys.issuer(), &upstream.url()).issuer_option("token_types", "[\"at+jwt\"]").render();
        let proxy = Proxy::start(&config);
        let sign = |typ: Option<&str>, sub: &str| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("rsa-1".into());
            header.typ = typ.map(str::to_owned);
            key.sign_with_header(&header, &claims(&keys.issuer(), AUDIENCE, sub, "tasks:read"))
        };
        for (typ, expected) in [
            (Some("at+jwt"), 200),
            (Some("AT+JWT"), 200),
            (Some("application/at+jwt"), 200),
            (Some("JWT"), 401),
            (Some("id+jwt"), 401),
            (Some("secevent+jwt"), 401),
            (None, 401),
        ] {
            let r = get_with_token(proxy.addr, "/todos/1", &sign(typ, &format!("{typ:?}")));
            assert_eq!(r.status, expected, "typ {typ:?}");
        }
    }
}

/// Identity headers sent by the client, in every disguise, and claim values that would smuggle headers.
mod header_spoofing {
    use harness::client::{get, get_with_token, send_raw};
    use harness::fixtures::World;
    use serde_json::json;

    #[test]
    fn client_supplied_identity_headers_never_reach_the_upstream() {
        let w = World::start();
        let token = w.token("alice", "tasks:read");
        let bearer = format!("Bearer {token}");
        let spoofs: &[(&str, &str)] = &[
            ("X-Auth-Subject", "root"),
            ("x-auth-subject", "root"),
            ("X-AUTH-SUBJECT", "root"),
            ("X_Auth_Subject", "root"),
            ("x_auth-scopes", "admin"),
            ("X-Auth-Email", "root@example.com"),
            ("X-Auth-Issuer", "https://evil.example.com"),
        ];
        for target in ["/todos/1", "/healthz"] {
            let mut headers: Vec<(&str, &str)> = spoofs.to_vec();
            headers.push(("Authorization", &bearer));
            let r = get(w.proxy.addr, target, &headers);
            assert_eq!(r.status, 200, "{target}");
            let seen = w.upstream.last();
            for (name, _) in &seen.headers {
                let normalised = name.replace('_', "-");
                if normalised.starts_with("x-auth-") {
                    let values = seen.headers_named(name);
                    assert!(
                        !values
                            .iter()
                            .any(|v| v == "root" || v == "admin" || v.contains("evil") || v.contains("root@")),
                        "{target}: spoofed {name}: {values:?}"
                    );
                }
            }
            if target == "/todos/1" {
                assert_eq!(seen.headers_named("x-auth-subject"), ["alice"], "exactly one, the verified one");
            } else {
                assert!(seen.headers_named("x-auth-subject").is_empty());
            }
        }
    }

    #[test]
    fn a_connection_header_cannot_strip_the_identity_headers() {
        let w = World::start();
        let token = w.token("alice", "tasks:read");
        let raw = format!(
            "GET /todos/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: keep-alive, X-Auth-Subject, x_auth_scopes\r\n\r\n"
        );
        let r = send_raw(w.proxy.addr, raw.as_bytes()).expect("response");
        assert_eq!(r.status, 200);
        let seen = w.upstream.last();
        assert_eq!(seen.header("x-auth-subject").as_deref(), Some("alice"));
        for value in seen.headers_named("connection") {
            assert!(!value.to_ascii_lowercase().contains("x-auth"), "{value}");
            assert!(!value.to_ascii_lowercase().contains("x_auth"), "{value}");
        }
    }

    #[test]
    fn unsafe_claim_values_are_not_forwarded() {
        let w = World::start();
        for (sub, forwarded) in [
            ("alice\r\nX-Injected: 1", false),
            ("alice\nx", false),
            ("caf\u{e9}", false),
            ("a\u{0}b", false),
            ("plain-ascii user", true),
        ] {
            let mut claims = w.claims(sub, "tasks:read");
            claims["email"] = json!({"nested": "object"});
            let r = get_with_token(w.proxy.addr, "/todos/1", &w.rsa.sign(&claims));
            assert_eq!(r.status, 200, "{sub:?}");
            let seen = w.upstream.last();
            assert_eq!(seen.header("x-auth-subject").is_some(), forwarded, "{sub:?}");
            assert!(seen.header("x-injected").is_none());
            assert!(seen.header("x-auth-email").is_none());
        }
    }
}

/// What the policy sees versus what the upstream receives.
mod path_confusion {
    use harness::client::{get, get_with_token, send_raw};
    use harness::fixtures::World;

    fn raw_status(w: &World, target: &str, token: &str) -> u16 {
        let raw =
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
        send_raw(w.proxy.addr, raw.as_bytes()).map(|r| r.status).unwrap_or(0)
    }

    #[test]
    fn ambiguous_forms_are_refused_before_anything_else() {
        let w = World::start();
        // A token that may read todos but not reach /admin.
        let reader = w.token("alice", "tasks:read");
        for target in [
            // dot segments: raw, encoded, mixed case, double-encoded, overlong UTF-8
            "/todos/../admin/x",
            "/todos/./../admin/x",
            "/todos/%2e%2e/admin/x",
            "/todos/%2E%2E/admin/x",
            "/todos/.%2e/admin/x",
            "/todos/%252e%252e/admin/x",
            "/todos/%c0%ae%c0%ae/admin/x",
            "/todos/%e0%80%ae%e0%80%ae/admin/x",
            // encoded separators and backslashes
            "/todos%2f..%2fadmin/x",
            "/todos%2F1",
            "/todos%252f1",
            "/todos\\..\\admin",
            "/todos/%5c..%5cadmin",
            // matrix parameters, NUL, control bytes
            "/admin;x=1/users",
            "/todos/1;jsessionid=x",
            "/todos/%3b/1",
            "/todos/1%00.json",
            "/todos/1%0d%0aX-Injected:%201",
            // not a path at all
            "*",
        ] {
            let status = raw_status(&w, target, &reader);
            assert_eq!(status, 400, "{target}");
        }
        assert_eq!(w.upstream.count(), 0, "nothing ambiguous was forwarded");
    }

    #[test]
    fn equivalent_forms_route_and_forward_as_the_canonical_path() {
        let w = World::start();
        let admin = w.token("root", "admin");
        let reader = w.token("alice", "tasks:read");
        // Spellings of /admin/x: all routed to /admin/** (needs admin)...
        for target in ["/admin/x", "//admin//x", "/%61dmin/x", "/ad%6din/%78", "/admin/x/"] {
            assert_eq!(raw_status(&w, target, &reader), 403, "{target} is /admin for the policy");
        }
        // ...and the upstream receives the canonical form.
        for (target, forwarded) in
            [("//admin//x", "/admin/x"), ("/%61dmin/%78", "/admin/x"), ("/admin/x/", "/admin/x/")]
        {
            assert_eq!(raw_status(&w, target, &admin), 200, "{target}");
            assert_eq!(w.upstream.last().target, forwarded);
        }
        // `?` splits path from query for the policy exactly as for the upstream.
        assert_eq!(raw_status(&w, "/todos/1?/../../admin/x", &reader), 200);
        assert_eq!(w.upstream.last().target, "/todos/1?/../../admin/x");
        // An encoded `?` is part of the path: not the /admin route, so denied.
        assert_eq!(raw_status(&w, "/admin%3F/x", &reader), 403);
        // A fragment is not part of a request target: dropped for the policy
        // and the upstream alike.
        assert_eq!(raw_status(&w, "/todos/1#/../../admin", &reader), 200);
        assert_eq!(w.upstream.last().target, "/todos/1");
        assert_eq!(raw_status(&w, "/admin/x#/../../todos/1", &reader), 403);
        // Raw bytes that are not UTF-8 (Pingora would forward them verbatim).
        let raw = b"GET /todos/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_eq!(send_raw(w.proxy.addr, raw).map(|r| r.status).unwrap_or(0), 400);
    }

    #[test]
    fn unicode_compatibility_forms_of_dots_and_separators_are_refused() {
        let w = World::start();
        let reader = w.token("alice", "tasks:read");
        // What an upstream applying NFKC reads: `..`, `/`, `\`, `%`, `;`, `?`, `#`, NEL.
        for target in [
            "/public/%EF%BC%8E%EF%BC%8E/admin/x",     // U+FF0E FULLWIDTH FULL STOP
            "/public/\u{FF0E}\u{FF0E}/admin/x",       // the same, raw UTF-8
            "/public/%E2%80%A4%E2%80%A4/admin/x",     // U+2024 ONE DOT LEADER
            "/public/%E2%80%A5/admin/x",              // U+2025 TWO DOT LEADER: `..`
            "/public/%EF%B9%92%EF%B9%92/admin/x",     // U+FE52 SMALL FULL STOP
            "/public/..%EF%BC%8Fadmin/x",             // U+FF0F FULLWIDTH SOLIDUS
            "/public/..%EF%BC%BCadmin/x",             // U+FF3C FULLWIDTH REVERSE SOLIDUS
            "/public/..%EF%B9%A8admin/x",             // U+FE68 SMALL REVERSE SOLIDUS
            "/public/%EF%BC%852e%EF%BC%852e/admin/x", // U+FF05 FULLWIDTH PERCENT SIGN
            "/public/x%EF%BC%9Bjsessionid=1",         // U+FF1B FULLWIDTH SEMICOLON
            "/public/x%EF%B9%94y",                    // U+FE54 SMALL SEMICOLON
            "/public/x%EF%BC%9F/../admin",            // U+FF1F FULLWIDTH QUESTION MARK
            "/public/x%EF%BC%83y",                    // U+FF03 FULLWIDTH NUMBER SIGN
            "/public/x%C2%85y",                       // U+0085 NEXT LINE
        ] {
            assert_eq!(raw_status(&w, target, &reader), 400, "{target}");
        }
        assert_eq!(w.upstream.count(), 0, "nothing a normalising upstream reads differently was forwarded");
        // Other non-ASCII text is data, forwarded in canonical form.
        assert_eq!(raw_status(&w, "/public/caf%c3%a9", &reader), 200);
        assert_eq!(w.upstream.last().target, "/public/caf%C3%A9");
    }

    #[test]
    fn a_trailing_slash_or_case_change_cannot_reach_a_protected_route_another_way() {
        let w = World::start();
        // /admin/** needs admin; "/admin/" and "/admin" are the same route.
        for target in ["/admin", "/admin/", "//admin", "/%61dmin/x"] {
            assert_eq!(get(w.proxy.addr, target, &[]).status, 401, "{target}");
        }
        // Matching is case-sensitive; an unmatched case variant is default-denied.
        let reader = w.token("alice", "tasks:read");
        assert_eq!(get_with_token(w.proxy.addr, "/ADMIN/x", &reader).status, 403);
        assert_eq!(w.upstream.count(), 0);
    }
}

/// Floods of attacker-chosen tokens, kids, client addresses and paths leave
/// memory bounded and the IdP unhammered.
mod resource_exhaustion {
    use std::time::Duration;

    use super::status;
    use harness::client::{get, get_with_token};
    use harness::config::TestConfig;
    use harness::fixtures::{standard_config, World, AUDIENCE, HS_ENV, HS_SECRET};
    use harness::keys::{claims, jwks, TestKey};
    use harness::proxy::{Proxy, ProxyOptions};
    use harness::servers::{KeyServer, Upstream};

    /// A little over the fixture's `min_refresh_interval`.
    const REFRESH_INTERVAL: Duration = Duration::from_millis(1100);

    #[test]
    fn unknown_kids_refresh_the_jwks_at_most_once_per_interval() {
        let w = World::start();
        std::thread::sleep(REFRESH_INTERVAL);
        let before = w.keys.jwks_hits();
        let claims = w.claims("alice", "tasks:read");
        for n in 0..200 {
            let stranger = w.rsa.with_kid(&format!("random-{n}"));
            assert_eq!(status(&w, &stranger.sign(&claims)), 401);
        }
        let fetched = w.keys.jwks_hits() - before;
        // min_refresh_interval is 1 s in the fixture; 200 requests take well
        // under a few seconds, so a handful of fetches at most, never 200.
        assert!(fetched <= 6, "{fetched} JWKS fetches for 200 unknown kids");
        assert!(fetched >= 1, "an unknown kid triggers a refresh");
    }

    #[test]
    fn a_replayed_forged_token_is_verified_once() {
        let w = World::start();
        // Same kid, another key: a signature that cannot verify.
        let forger = TestKey::rsa("forger").with_kid("rsa-1");
        let forged = forger.sign(&w.claims("mallory", "admin"));
        for _ in 0..50 {
            let answer = get_with_token(w.proxy.addr, "/todos/1", &forged);
            assert_eq!(answer.status, 401);
            assert!(answer.header("www-authenticate").is_some_and(|c| c.contains("signature is invalid")));
        }
        assert_eq!(w.proxy.metric("portcullis_refused_token_hits_total"), Some(49.0), "one verification, 49 replays");
        // A token that is not valid yet may become valid: never remembered.
        let mut early = w.claims("alice", "tasks:read");
        early["nbf"] = (harness::now() + 3600).into();
        let early = w.rsa.sign(&early);
        for _ in 0..3 {
            assert_eq!(status(&w, &early), 401);
        }
        assert_eq!(w.proxy.metric("portcullis_refused_token_hits_total"), Some(49.0));
    }

    #[test]
    fn a_client_over_its_failed_auth_budget_gets_429_before_any_verification() {
        let w = World::start_configured(|c| {
            c.main_option("trusted_proxies", "[\"127.0.0.1\"]")
                .extra("tokens:\n  failed_auth_budget: {limit: 5, per: 1m}\n")
        });
        let send = |client: &str, token: &str| {
            let authorization = format!("Bearer {token}");
            get(w.proxy.addr, "/todos/1", &[("X-Forwarded-For", client), ("Authorization", &authorization)])
        };
        let (mallory, alice) = ("198.51.100.7", "203.0.113.9");
        let cached = w.token("mallory-valid", "tasks:read");
        assert_eq!(send(mallory, &cached).status, 200, "verified and cached before the flood");
        let forger = TestKey::rsa("forger").with_kid("rsa-1");
        let forged = |n: u32| forger.sign(&w.claims(&format!("victim-{n}"), "admin"));
        for n in 0..6 {
            assert_eq!(send(mallory, &forged(n)).status, 401, "within the budget, forgery {n} is verified and refused");
        }
        let over = send(mallory, &forged(99));
        assert_eq!(over.status, 429, "{}", over.text());
        assert!(over.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s))));
        // Nothing that needs a verification from this client, even valid...
        assert_eq!(send(mallory, &w.token("new-valid", "tasks:read")).status, 429);
        // ...but a token already verified is served from the cache.
        assert_eq!(send(mallory, &cached).status, 200);
        // Another client behind the same trusted proxy is unaffected.
        assert_eq!(send(alice, &w.token("alice", "tasks:read")).status, 200);
        assert_eq!(w.proxy.metric("portcullis_failed_auth_budget_refusals_total"), Some(2.0));
    }

    #[test]
    fn the_verified_token_cache_stays_bounded() {
        let upstream = Upstream::start("api");
        let key = TestKey::rsa("rsa-1");
        let keys = KeyServer::start(jwks(&[&key]));
        let config = standard_config(&keys.issuer(), &upstream.url(), "token_cache:\n  max_entries: 50\n");
        let proxy = Proxy::start(&config);
        for n in 0..400 {
            let token = key.sign(&claims(&keys.issuer(), AUDIENCE, &format!("u{n}"), "tasks:read"));
            assert_eq!(get_with_token(proxy.addr, "/todos/1", &token).status, 200);
        }
        let entries = proxy.metric("portcullis_token_cache_entries").expect("entries gauge");
        assert!(entries <= 50.0, "{entries}");
        assert!(entries >= 10.0, "{entries}");
        assert_eq!(proxy.metric("portcullis_token_cache_misses_total"), Some(400.0));
    }

    #[test]
    fn distinct_client_addresses_stay_within_the_key_cap() {
        let w = World::start();
        let config = TestConfig::new(&w.keys.issuer(), &w.upstream.url())
            .main_option("trusted_proxies", "[\"127.0.0.1\"]")
            .rate_limit("login", "{key: client_ip, limit: 100, per: 1m, max_keys: 50}")
            .route_option("/public/**", "rate_limit", "login")
            .render();
        let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &[(HS_ENV, HS_SECRET)], wait_ready: true });
        for n in 0..300u32 {
            let ip = format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
            let status = get(proxy.addr, "/public/login", &[("X-Forwarded-For", &ip)]).status;
            assert!(status == 200 || status == 429, "{status}");
        }
        let keys = proxy.metric("portcullis_rate_limit_keys{limit=\"login\"}").unwrap();
        assert!(keys <= 50.0, "{keys} keys tracked");
        let overflowed = proxy.metric("portcullis_rate_limit_overflow_total{limit=\"login\"}").unwrap();
        assert!(overflowed >= 250.0, "{overflowed}");
        // The overflow bucket is one client: the spray is limited as one.
        let limited = proxy.metric("portcullis_rate_limit_rejections_total{limit=\"login\"}").unwrap();
        assert!(limited >= 100.0, "{limited} rejections");
    }

    #[test]
    fn distinct_paths_create_no_state() {
        let w = World::start();
        let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
        for n in 0..20 {
            let _ = get(w.proxy.addr, &format!("/nowhere/{n}"), &[]);
        }
        let before = series(&w.proxy.metrics());
        for n in 20..1000 {
            let _ = get(w.proxy.addr, &format!("/nowhere/{n}/x%20y"), &[]);
        }
        let text = w.proxy.metrics();
        assert_eq!(series(&text), before, "no series per path");
        assert!(!text.contains("/nowhere"));
    }

    #[test]
    fn made_up_opaque_tokens_cannot_hammer_the_introspection_endpoint() {
        let upstream = Upstream::start("api");
        let key = TestKey::rsa("rsa-1");
        let keys = KeyServer::start(jwks(&[&key]));
        let config = TestConfig::new(&keys.issuer(), &upstream.url())
            .issuer_option(
                "introspection",
                "{client_id: portcullis, client_secret_env: INTROSPECTION_SECRET, max_calls_per_second: 20}",
            )
            .render();
        let proxy = Proxy::start_with(ProxyOptions {
            config: &config,
            env: &[(HS_ENV, HS_SECRET), ("INTROSPECTION_SECRET", "s3cret")],
            wait_ready: true,
        });
        // A real opaque token works.
        keys.activate("opaque-good", serde_json::json!({"aud": AUDIENCE, "scope": "tasks:read", "sub": "svc"}));
        assert_eq!(get_with_token(proxy.addr, "/todos/1", "opaque-good").status, 200);
        // A flood of made-up ones: 401 (inactive) or 503 (over budget), and
        // the IdP sees at most the budget.
        let started = std::time::Instant::now();
        let before = keys.introspection_hits();
        for n in 0..400 {
            let status = get_with_token(proxy.addr, "/todos/1", &format!("made-up-{n}")).status;
            assert!(status == 401 || status == 503, "{status}");
        }
        let calls = keys.introspection_hits() - before;
        let budget = 20.0 * (started.elapsed().as_secs_f64() + 1.0) + 20.0;
        assert!((calls as f64) <= budget, "{calls} introspection calls for 400 made-up tokens (budget {budget})");
        // Replaying one is answered from the negative cache.
        let before = keys.introspection_hits();
        std::thread::sleep(Duration::from_millis(1100));
        let first = get_with_token(proxy.addr, "/todos/1", "made-up-again").status;
        let again = get_with_token(proxy.addr, "/todos/1", "made-up-again").status;
        assert_eq!((first, again), (401, 401));
        assert_eq!(keys.introspection_hits() - before, 1);
        // The good token is still served (from the verified-token cache).
        assert_eq!(get_with_token(proxy.addr, "/todos/1", "opaque-good").status, 200);
    }
}

/// HTTP/1.1 request smuggling: framing two servers could read differently is
/// refused, never forwarded.
mod smuggling {
    use harness::client::send_raw;
    use harness::fixtures::World;

    #[test]
    fn conflicting_framing_is_refused() {
        let w = World::start();
        let cases: Vec<String> = vec![
            "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".into(),
            "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd".into(),
            "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd".into(),
            "POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".into(),
            "POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            "POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".into(),
            // obs-fold: a header continued on the next line
            "GET /public/x HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n".into(),
            "GET /public/x HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".into(),
            format!("GET /public/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(40 * 1024)),
            format!("GET /public/x HTTP/1.1\r\nHost: x\r\n{}\r\n", (0..150).map(|n| format!("X-H{n}: v\r\n")).collect::<String>()),
        ];
        for raw in &cases {
            let status = send_raw(w.proxy.addr, raw.as_bytes()).map(|r| r.status).unwrap_or(0);
            let first_lines: String = raw.lines().take(4).collect::<Vec<_>>().join(" | ");
            // 400/431 from portcullis or Pingora; 0 if the connection was closed without one.
            assert!(matches!(status, 0 | 400 | 413 | 431 | 501), "{status} for {first_lines:.120}");
        }
        assert_eq!(w.upstream.count(), 0, "no ambiguous request was forwarded");
    }

    #[test]
    fn content_length_with_transfer_encoding_reaches_the_upstream_unambiguous() {
        // Pingora applies RFC 9112 6.3 before any filter runs: Transfer-Encoding
        // wins, Content-Length is dropped, the connection closes after the
        // response. The upstream must see one framing only, and the bytes
        // after the chunked body must not become a second request.
        let w = World::start();
        for order in
            ["Content-Length: 6\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 6"]
        {
            let before = w.upstream.count();
            let raw = format!(
                "POST /public/x HTTP/1.1\r\nHost: x\r\n{order}\r\n\r\n0\r\n\r\nGET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            let r = send_raw(w.proxy.addr, raw.as_bytes()).expect("a response");
            assert!(r.status == 200 || r.status == 400, "{order}: {}", r.status);
            if r.status == 200 {
                assert_eq!(r.header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"), "{order}");
                let seen = w.upstream.last();
                assert_eq!(seen.header("content-length"), None, "{order}: both framings forwarded");
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(w.upstream.received().iter().all(|r| !r.target.contains("smuggled")), "{order}");
            assert!(w.upstream.count() <= before + 1);
        }
    }
}

/// Headers that make an upstream framework run another method or route, or
/// believe another client, host or scheme, than the ones portcullis saw and
/// decided on.
mod request_rewriting {
    use harness::client::get;
    use harness::fixtures::World;

    const OVERRIDES: [(&str, &str); 9] = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("x_method_override", "DELETE"),
        ("X-Original-Method", "DELETE"),
        ("X-Original-URL", "/admin/users"),
        ("X-Rewrite-URL", "/admin/users"),
        ("x-original-uri", "/admin/users"),
        ("X-Envoy-Original-Path", "/admin/users"),
        ("X_ORIGINAL_URL", "/admin/users"),
    ];

    /// Headers a client could claim another address, host or scheme with.
    const SPOOFS: [(&str, &str); 11] = [
        ("X-Forwarded-For", "203.0.113.66"),
        ("X-Real-IP", "203.0.113.66"),
        ("x_real_ip", "203.0.113.66"),
        ("Forwarded", "for=203.0.113.66;proto=https;host=evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Prefix", "/evil.example"),
        ("X-Client-IP", "203.0.113.66"),
        ("True-Client-IP", "203.0.113.66"),
        ("CF-Connecting-IP", "203.0.113.66"),
    ];

    #[test]
    fn method_and_url_override_headers_never_reach_the_upstream() {
        let w = World::start();
        let reader = format!("Bearer {}", w.token("alice", "tasks:read"));
        for target in ["/todos/1", "/public/x"] {
            let mut headers = OVERRIDES.to_vec();
            headers.push(("Authorization", &reader));
            assert_eq!(get(w.proxy.addr, target, &headers).status, 200, "{target}");
            let seen = w.upstream.last();
            assert_eq!((seen.method.as_str(), seen.target.as_str()), ("GET", target));
            for (name, _) in OVERRIDES {
                assert!(seen.header(name).is_none(), "{target}: {name} forwarded");
                assert!(seen.header(&name.replace('_', "-")).is_none(), "{target}: {name} forwarded");
            }
        }
    }

    #[test]
    fn a_route_may_let_one_override_through_and_the_policy_decides_on_the_overridden_request() {
        let w = World::start_configured(|c| {
            c.leading_route(&[
                ("path", "/todos/**"),
                ("methods", "[GET]"),
                ("scopes", "[tasks:read]"),
                ("allow_override", "[X-HTTP-Method-Override]"),
            ])
            .leading_route(&[
                ("path", "/public/**"),
                ("public", "true"),
                ("allow_override", "[x-original-url]"),
            ])
        });
        let bearer = |token: String| format!("Bearer {token}");
        let (reader, writer) =
            (bearer(w.token("alice", "tasks:read")), bearer(w.token("bob", "tasks:read tasks:write")));
        let admin = bearer(w.token("root", "admin"));
        let delete = ("X-HTTP-Method-Override", "DELETE");
        // Decided as the DELETE the upstream will run: the reader may not.
        assert_eq!(get(w.proxy.addr, "/todos/1", &[("Authorization", &reader), delete]).status, 403);
        assert_eq!(w.upstream.count(), 0);
        assert_eq!(get(w.proxy.addr, "/todos/1", &[("Authorization", &writer), delete]).status, 200);
        assert_eq!(w.upstream.last().header("x-http-method-override").as_deref(), Some("DELETE"));
        // A variant the upstream may also read, or two values: refused.
        let variant = ("X_HTTP_Method_Override", "DELETE");
        assert_eq!(get(w.proxy.addr, "/todos/1", &[("Authorization", &reader), variant]).status, 400);
        let twice = [("Authorization", reader.as_str()), delete, ("X-HTTP-Method-Override", "GET")];
        assert_eq!(get(w.proxy.addr, "/todos/1", &twice).status, 400);
        // A header the route does not allow is removed, and the request decided as sent.
        assert_eq!(
            get(w.proxy.addr, "/todos/1", &[("Authorization", &reader), ("X-HTTP-Method", "DELETE")]).status,
            200
        );
        assert!(w.upstream.last().header("x-http-method").is_none());
        // A URL override on a public route is decided as the path it names.
        let to_admin = ("X-Original-URL", "/admin/x");
        assert_eq!(get(w.proxy.addr, "/public/x", &[to_admin]).status, 401);
        assert_eq!(get(w.proxy.addr, "/public/x", &[to_admin, ("Authorization", &reader)]).status, 403);
        assert_eq!(get(w.proxy.addr, "/public/x", &[to_admin, ("Authorization", &admin)]).status, 200);
        assert_eq!(w.upstream.last().header("x-original-url").as_deref(), Some("/admin/x"));
        let dotted = ("X-Original-URL", "/public/%EF%BC%8E%EF%BC%8E/admin/x");
        assert_eq!(get(w.proxy.addr, "/public/x", &[dotted]).status, 400);
        assert_eq!(w.upstream.count(), 3, "the writer's, the plain GET's and the admin's");
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_client_are_replaced_by_what_portcullis_saw() {
        let w = World::start();
        assert_eq!(get(w.proxy.addr, "/public/x", &SPOOFS).status, 200);
        let seen = w.upstream.last();
        let host = format!("127.0.0.1:{}", w.proxy.addr.port());
        assert_eq!(seen.headers_named("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen.headers_named("x-real-ip"), ["127.0.0.1"]);
        assert_eq!(seen.headers_named("x-forwarded-proto"), ["http"]);
        assert_eq!(seen.headers_named("x-forwarded-host"), [host]);
        for name in
            ["forwarded", "x_real_ip", "x-forwarded-port", "x-forwarded-prefix", "x-client-ip", "true-client-ip"]
        {
            assert!(seen.header(name).is_none(), "{name} forwarded");
        }
        for (name, value) in &seen.headers {
            let value = String::from_utf8_lossy(value);
            assert!(!value.contains("203.0.113.66") && !value.contains("evil"), "{name}: {value}");
        }
    }

    #[test]
    fn a_trusted_proxys_forwarding_headers_are_kept_and_extended() {
        let w = World::start_configured(|c| {
            c.main_option("trusted_proxies", "[\"127.0.0.1\"]").upstream_option(
                "forwarded_headers",
                "[X-Forwarded-For, x-forwarded-host, x-forwarded-proto, x-real-ip, forwarded]",
            )
        });
        let mut headers = vec![
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "api.example.com"),
            ("X-Forwarded-Prefix", "/api"),
            ("Forwarded", "for=198.51.100.7;proto=https"),
        ];
        headers.extend(OVERRIDES);
        assert_eq!(get(w.proxy.addr, "/public/x", &headers).status, 200);
        let seen = w.upstream.last();
        let host = format!("127.0.0.1:{}", w.proxy.addr.port());
        assert_eq!(seen.headers_named("x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
        assert_eq!(seen.headers_named("x-forwarded-proto"), ["https"]);
        assert_eq!(seen.headers_named("x-forwarded-host"), ["api.example.com"]);
        assert_eq!(seen.headers_named("x-forwarded-prefix"), ["/api"]);
        assert_eq!(seen.headers_named("x-real-ip"), ["198.51.100.7"]);
        assert_eq!(
            seen.headers_named("forwarded"),
            [format!("for=198.51.100.7;proto=https, for=127.0.0.1;host=\"{host}\";proto=http")]
        );
        // A trusted proxy passes its client's headers on: overrides still go.
        for (name, _) in OVERRIDES {
            assert!(seen.header(name).is_none(), "{name} forwarded");
        }
    }

    #[test]
    fn an_upstream_can_be_sent_none_of_them() {
        let w = World::start_configured(|c| c.upstream_option("forwarded_headers", "[]"));
        assert_eq!(get(w.proxy.addr, "/public/x", &SPOOFS).status, 200);
        let seen = w.upstream.last();
        for (name, _) in SPOOFS {
            assert!(seen.header(name).is_none(), "{name} forwarded");
        }
    }
}

/// HTTP/1.1 pipelining (RFC 9112 9.3.2): requests sent back to back on one
/// connection are each decided and answered, in order; none reaches the
/// upstream undecided.
mod pipelining {
    use harness::client::send_pipelined;
    use harness::fixtures::World;

    fn request(method: &str, target: &str, token: Option<&str>, body: &str) -> String {
        let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let length = if method == "POST" { format!("Content-Length: {}\r\n", body.len()) } else { String::new() };
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{authorization}{length}\r\n{body}")
    }

    #[test]
    fn every_pipelined_request_is_decided_and_answered_in_order() {
        let w = World::start_configured(|c| {
            c.rate_limit("once", "{key: client_ip, limit: 1, per: 1m}").route_option("/healthz", "rate_limit", "once")
        });
        let (reader, writer) = (w.token("alice", "tasks:read"), w.token("bob", "tasks:write"));
        let batch = [
            request("GET", "/todos/1", None, ""),
            request("GET", "/todos/2", Some(&reader), ""),
            request("POST", "/todos/3", Some(&reader), ""),
            request("GET", "/public/%EF%BC%8E%EF%BC%8E/admin/x", None, ""),
            request("POST", "/todos/4", Some(&writer), "forwarded body"),
            request("GET", "/healthz", None, ""),
            request("GET", "/healthz", None, ""),
            request("GET", "/admin/x", Some(&reader), ""),
            request("GET", "/public/last", None, ""),
        ]
        .concat();
        let (responses, _) = send_pipelined(w.proxy.addr, batch.as_bytes(), 9).expect("responses");
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [401, 200, 403, 400, 200, 200, 429, 403, 200]);
        let forwarded: Vec<(String, String, String)> = w
            .upstream
            .received()
            .into_iter()
            .map(|r| (r.method, r.target, String::from_utf8_lossy(&r.body).into_owned()))
            .collect();
        let expected = [
            ("GET", "/todos/2", ""),
            ("POST", "/todos/4", "forwarded body"),
            ("GET", "/healthz", ""),
            ("GET", "/public/last", ""),
        ];
        let expected: Vec<(String, String, String)> =
            expected.iter().map(|(m, t, b)| (m.to_string(), t.to_string(), b.to_string())).collect();
        assert_eq!(forwarded, expected);
    }

    /// Pingora answers a request whose body it has not read with
    /// `Connection: close`; reading an unbounded body only to refuse it is
    /// not worth keeping the connection. What follows is never read.
    #[test]
    fn a_refused_request_with_an_unread_body_ends_the_connection() {
        let w = World::start();
        let reader = w.token("alice", "tasks:read");
        let inner = request("GET", "/public/in-body", None, "");
        let batch =
            [request("POST", "/todos/3", Some(&reader), &inner), request("GET", "/public/after", None, "")].concat();
        let (responses, closed) = send_pipelined(w.proxy.addr, batch.as_bytes(), 3).expect("responses");
        let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [403]);
        assert_eq!(responses[0].header("connection").map(str::to_ascii_lowercase).as_deref(), Some("close"));
        assert!(closed);
        assert_eq!(w.upstream.count(), 0, "a body is never read as a request");
    }

    #[test]
    fn a_request_with_doubtful_framing_ends_the_connection() {
        let w = World::start();
        // The last: a body both lengths agree is empty, so only portcullis's
        // refusal (not an unread body) closes the connection.
        for (framing, body) in [
            ("Content-Length: 4\r\nContent-Length: 40", "abcd"),
            ("Transfer-Encoding: gzip, chunked", "abcd"),
            ("Content-Length: 0\r\nContent-Length: 0", ""),
        ] {
            let after = request("GET", "/public/smuggled", None, "");
            let batch = format!("POST /public/a HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n{body}{after}");
            let (responses, closed) = send_pipelined(w.proxy.addr, batch.as_bytes(), 2).expect("responses");
            let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
            assert_eq!(statuses, [400], "{framing}");
            assert!(closed, "{framing}: the connection stays open after a request whose end is in doubt");
        }
        assert_eq!(w.upstream.count(), 0);
    }
}
