//! Loading real files: the reference configuration, policy files, and every
//! class of operator mistake with its exact FILE:LINE:COL.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use config::{
    load_with_env, Algorithm, ClaimPath, HeaderValueSource, KeySource, LoadError, Loaded, Mode, RateKey, RequiredClaim,
    RequiredValue, Severity,
};
use policy::{Access, IssuerId};

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

/// The reference configuration from DESIGN.md.
const REFERENCE: &str = r#"listen: "0.0.0.0:8080"
admin_listen: "127.0.0.1:9901"
realm: "todo-api"
trusted_proxies: []
threads: 4
log_level: info

upstreams:
  api:
    url: "http://127.0.0.1:8000"

issuers:
  - name: sso
    issuer: "https://sso.example.com/realms/app"
    audiences: ["todo-api"]
    algorithms: ["RS256", "ES256"]
    leeway: 30s
    scope_claims: ["scope", "scp", "realm_access.roles"]
  - name: local
    issuer: "todo-api"
    algorithms: ["HS256"]
    secret_env: "TODO_JWT_SECRET"
    audiences: ["todo-api"]

identity_headers:
  X-Auth-Subject: sub
  X-Auth-Issuer: iss
  X-Auth-Scopes: scopes
  X-Auth-Email: email

rate_limits:
  auth:
    key: client_ip
    limit: 5
    per: 1m
    burst: 5

policy_files: ["policies/*.yaml"]

routes:
  - path: /healthz
    public: true
  - path: /auth/**
    public: true
    rate_limit: auth
  - path: /todos/**
    methods: [GET]
    scopes: [tasks:read]
  - path: /todos/**
    methods: [POST, PUT, PATCH, DELETE]
    scopes: [tasks:write]
  - path: /admin/**
    any_scopes: [admin, superuser]
"#;

mod common;
use common::Dir;

fn env_with_secret() -> HashMap<String, String> {
    HashMap::from([("TODO_JWT_SECRET".to_owned(), SECRET.to_owned())])
}

fn load(path: &Path, mode: Mode, env: &HashMap<String, String>) -> Result<Loaded, LoadError> {
    load_with_env(path, mode, &|name| env.get(name).cloned())
}

/// Load a config made of `text` and expect it to fail; return the error lines.
fn errors_of(text: &str) -> Vec<String> {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", text);
    let err = load(&path, Mode::Serve, &env_with_secret()).expect_err("config should be refused");
    let prefix = format!("{}:", path.display());
    err.errors()
        .map(|d| {
            let line = d.to_string();
            assert!(line.starts_with(&prefix), "{line} should start with the file name");
            line[prefix.len()..].to_owned()
        })
        .collect()
}

/// A minimal valid configuration with `extra` appended to the issuer list item.
fn with_issuer(extra: &str) -> String {
    format!(
        "upstreams:\n  api:\n    url: http://127.0.0.1:8000\nissuers:\n  - name: sso\n    issuer: https://sso.example.com\n{extra}routes:\n  - path: /x\n"
    )
}

#[test]
fn the_reference_configuration_loads() {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", REFERENCE);
    dir.write("policies/20-reports.yaml", "routes:\n  - path: /reports/**\n    scopes: [reports:read]\n");
    dir.write("policies/10-users.yaml", "routes:\n  - path: /users/{id}\n    methods: [GET]\n    issuers: [sso]\n");
    let loaded = load(&path, Mode::Serve, &env_with_secret()).unwrap();
    let config = &loaded.config;

    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.admin_listen.unwrap().to_string(), "127.0.0.1:9901");
    assert_eq!(config.realm, "todo-api");
    assert_eq!(config.threads, 4);
    assert_eq!(config.upstreams[0].address(), "127.0.0.1:8000");
    assert_eq!(config.upstreams[0].forwarded_headers, config::ForwardedHeader::DEFAULT);

    let sso = &config.issuers[0];
    assert_eq!(sso.algorithms, [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(
        sso.keys,
        KeySource::Discovery { url: "https://sso.example.com/realms/app/.well-known/openid-configuration".into() }
    );
    assert_eq!(sso.leeway, Duration::from_secs(30));
    assert_eq!(sso.scope_claims[2].0, ["realm_access", "roles"]);
    match &config.issuers[1].keys {
        KeySource::Secret { env, secret } => {
            assert_eq!(env, "TODO_JWT_SECRET");
            assert_eq!(secret.as_ref().unwrap().expose(), SECRET.as_bytes());
        }
        other => panic!("unexpected key source {other:?}"),
    }

    assert_eq!(config.identity_headers[0].name, "x-auth-subject");
    assert_eq!(config.identity_headers[2].source, HeaderValueSource::Scopes);
    assert_eq!(config.rate_limits[0].key, RateKey::ClientIp);
    assert_eq!(config.rate_limits[0].per, Duration::from_secs(60));

    // Main-file routes first, then policy files in file-name order.
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "/healthz",
            "/auth/**",
            "GET /todos/**",
            "POST,PUT,PATCH,DELETE /todos/**",
            "/admin/**",
            "GET /users/{id}",
            "/reports/**"
        ]
    );
    assert_eq!(config.routes[1].rate_limits, [0]);
    match &config.routes[5].access {
        Access::Protected(req) => assert_eq!(req.issuers, Some(vec![IssuerId(0)])),
        Access::Public => panic!("route should be protected"),
    }
    assert_eq!(config.sources.len(), 3);
    assert!(config.route_origins[6].to_string().ends_with("20-reports.yaml:2:5"), "{}", config.route_origins[6]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn the_secret_never_appears_in_diagnostics_or_debug_output() {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", REFERENCE);
    let loaded = load(&path, Mode::Serve, &env_with_secret()).unwrap();
    let debug = format!("{:?}", loaded.config);
    assert!(!debug.contains(SECRET));
    assert!(debug.contains("redacted"));

    // A too-short secret is refused without echoing it.
    let short = HashMap::from([("TODO_JWT_SECRET".to_owned(), "hunter2".to_owned())]);
    let err = load(&path, Mode::Serve, &short).unwrap_err().to_string();
    assert!(err.contains("TODO_JWT_SECRET") && err.contains("7 bytes"), "{err}");
    assert!(!err.contains("hunter2"));
}

#[test]
fn an_unset_secret_is_an_error_for_run_and_a_warning_for_check() {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", REFERENCE);
    let empty = HashMap::new();
    let err = load(&path, Mode::Serve, &empty).unwrap_err();
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].ends_with(":22:17: environment variable TODO_JWT_SECRET is not set (or empty)"), "{errors:?}");

    let loaded = load(&path, Mode::Check, &empty).unwrap();
    let secret_warnings: Vec<_> = loaded.warnings.iter().filter(|w| w.message.contains("TODO_JWT_SECRET")).collect();
    assert_eq!(secret_warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(secret_warnings[0].severity, Severity::Warning);
}

#[test]
fn yaml_syntax_type_unknown_key_and_duplicate_key_errors_have_positions() {
    let syntax = errors_of("listen: \"0.0.0.0:80\nrealm: x\n");
    assert_eq!(syntax, ["2:1: invalid indentation in multiline quoted scalar"]);
    let threads = errors_of("threads: many\n");
    assert!(threads[0].starts_with("1:10: "), "{threads:?}");
    let unknown = errors_of("listne: \"0.0.0.0:80\"\n");
    assert!(unknown[0].starts_with("1:1: unknown field `listne`"), "{unknown:?}");
    let duplicate = errors_of("realm: a\nrealm: b\n");
    assert!(duplicate[0].starts_with("2:1: ") && duplicate[0].contains("duplicate"), "{duplicate:?}");
    // Strict booleans: `yes` is not true.
    let yes = errors_of("routes:\n  - path: /x\n    public: yes\n");
    assert!(yes[0].starts_with("3:13: "), "{yes:?}");
}

#[test]
fn algorithm_rules() {
    let none = errors_of(&with_issuer("    audiences: [a]\n    algorithms: [RS256, None]\n"));
    assert_eq!(none, ["8:25: 'none' is never accepted: unsigned tokens prove nothing"]);
    let mixed = errors_of(&with_issuer("    audiences: [a]\n    algorithms: [RS256, HS256]\n"));
    assert!(mixed[0].starts_with("8:18: an issuer must not mix HMAC"), "{mixed:?}");
    let unknown = errors_of(&with_issuer("    audiences: [a]\n    algorithms: [RS1]\n"));
    assert!(unknown[0].starts_with("8:18: unsupported algorithm 'RS1'"), "{unknown:?}");
    let no_secret = errors_of(&with_issuer("    audiences: [a]\n    algorithms: [HS256]\n"));
    assert!(no_secret[0].starts_with("5:5: HMAC algorithms need secret_env"), "{no_secret:?}");
    let secret_on_rsa =
        errors_of(&with_issuer("    audiences: [a]\n    algorithms: [RS256]\n    secret_env: TODO_JWT_SECRET\n"));
    assert!(secret_on_rsa[0].starts_with("9:17: secret_env is only for HMAC"), "{secret_on_rsa:?}");
}

#[test]
fn audiences_are_required_unless_explicitly_waived() {
    let missing = errors_of(&with_issuer(""));
    assert!(missing[0].starts_with("5:5: issuer 'sso' has no audiences"), "{missing:?}");
    let empty = errors_of(&with_issuer("    audiences: []\n"));
    assert!(empty[0].starts_with("5:5: issuer 'sso' has no audiences"), "{empty:?}");

    let dir = Dir::new();
    let path = dir.write("c.yaml", &with_issuer("    allow_any_audience: true\n"));
    let loaded = load(&path, Mode::Serve, &HashMap::new()).unwrap();
    assert!(loaded.config.issuers[0].any_audience);
}

#[test]
fn unknown_references_are_errors() {
    let text = r"upstreams:
  api:
    url: http://127.0.0.1:1
  other:
    url: http://127.0.0.1:2
issuers:
  - name: sso
    issuer: https://sso.example.com
    audiences: [a]
routes:
  - path: /a
    upstream: nope
  - path: /b
    issuers: [ghost]
    upstream: api
  - path: /c
    rate_limit: [fast]
    upstream: api
  - path: /d
";
    let errors = errors_of(text);
    assert_eq!(
        errors,
        [
            "12:15: unknown upstream 'nope' (defined: api, other)",
            "14:15: unknown issuer 'ghost' (defined: sso)",
            "17:17: unknown rate limit 'fast' (none are defined)",
            "19:5: several upstreams are configured; name this route's 'upstream'",
        ]
    );
}

#[test]
fn route_mistakes() {
    let base = "upstreams:\n  api:\n    url: http://127.0.0.1:1\nissuers:\n  - name: sso\n    issuer: https://s.example.com\n    audiences: [a]\nroutes:\n";
    let cases = [
        ("  - path: todos\n", "9:11: invalid path pattern 'todos': path pattern must start with '/'"),
        (
            "  - path: /a/**/b\n",
            "9:11: invalid path pattern '/a/**/b': '**' is only allowed as the last segment, as in '/api/**'",
        ),
        (
            "  - path: /a\n    methods: [get]\n",
            "10:15: methods are case-sensitive in HTTP; write 'GET' instead of 'get'",
        ),
        ("  - path: /a\n    public: true\n    scopes: [x]\n", "9:5: a public route cannot also have scopes"),
        (
            "  - path: /a\n    scopes: [\"a b\"]\n",
            "10:14: 'a b' is not a valid scope (no spaces, quotes or backslashes)",
        ),
        (
            "  - path: /a\n    hosts: [\"a.com:80\"]\n",
            "10:13: 'a.com:80' is not a host name or '*.domain' pattern (no ports)",
        ),
        ("  - path: /a\n    nmae: x\n", "10:5: unknown field `nmae`"),
        (
            "  - path: /a\n    allow_override: [X-HTTP-Method-Override, _method]\n",
            "10:46: '_method' is not one of: x-http-method-override, x-http-method, x-method-override, \
             x-original-method, x-original-url, x-rewrite-url, x-original-uri, x-envoy-original-path",
        ),
    ];
    for (routes, expected) in cases {
        let errors = errors_of(&format!("{base}{routes}"));
        assert!(errors[0].starts_with(expected), "{routes:?}: got {errors:?}, want {expected}");
    }
}

#[test]
fn other_value_mistakes() {
    let cases = [
        ("listen: 8080\n", "1:9: '8080' is not an address:port"),
        ("trusted_proxies: [10.0.0.0/33]\n", "1:19: '10.0.0.0/33' is not an IP address or CIDR"),
        ("log_level: loud\n", "1:12: 'loud' is not one of: trace, debug, info, warn, error"),
        ("upstreams:\n  api:\n    url: ftp://x\n", "3:10: upstream scheme must be http or https, not 'ftp'"),
        ("upstreams:\n  api:\n    url: http://x/base\n", "3:10: an upstream URL is scheme://host:port only"),
        ("upstreams:\n  api:\n    url: http://x\n    read_timeout: 30\n", "4:19: '30' has no unit"),
        (
            "upstreams:\n  api:\n    url: http://x\n    forwarded_headers: [x-real-ip, x-client-ip]\n",
            "4:36: 'x-client-ip' is not one of: x-forwarded-for, x-forwarded-host, x-forwarded-proto, x-real-ip, forwarded",
        ),
        (
            "upstreams:\n  api:\n    url: http://x\n    forwarded_headers: [Forwarded, forwarded]\n",
            "4:36: 'forwarded' is listed twice",
        ),
        ("rate_limits:\n  auth:\n    key: ip\n    limit: 5\n    per: 1m\n", "3:10: unknown rate-limit key 'ip'"),
        ("rate_limits:\n  auth:\n    key: client_ip\n    limit: 0\n    per: 1m\n", "4:12: limit must be at least 1"),
        ("identity_headers:\n  Authorization: sub\n", "2:3: 'Authorization' cannot be an identity header"),
        ("identity_headers:\n  X-A: sub\n  x-a: email\n", "3:3: identity header 'x-a' is listed twice"),
        ("tokens:\n  max_bytes: 10\n", "2:14: max_bytes must be between 64 and 65536"),
    ];
    for (text, expected) in cases {
        let errors = errors_of(text);
        assert!(errors[0].starts_with(expected), "{text:?}: got {errors:?}, want {expected}");
    }
}

#[test]
fn errors_in_policy_files_name_that_file() {
    let dir = Dir::new();
    let main = dir.write(
        "portcullis.yaml",
        "upstreams:\n  api:\n    url: http://127.0.0.1:1\npolicy_files: [\"policies/*.yaml\"]\nroutes:\n  - path: /a\n    public: true\n",
    );
    let bad = dir.write("policies/a.yaml", "routes:\n  - path: /b\n    public: true\n    upstream: nope\n");
    let err = load(&main, Mode::Serve, &HashMap::new()).unwrap_err();
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    assert_eq!(errors, [format!("{}:4:15: unknown upstream 'nope' (defined: api)", bad.display())]);
}

#[test]
fn a_missing_literal_policy_file_is_an_error_and_an_empty_glob_a_warning() {
    let dir = Dir::new();
    let main = dir.write(
        "portcullis.yaml",
        "upstreams:\n  api:\n    url: http://127.0.0.1:1\npolicy_files: [\"gone.yaml\"]\nroutes:\n  - path: /a\n    public: true\n",
    );
    let err = load(&main, Mode::Serve, &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains(":4:16: policy file 'gone.yaml' does not exist"), "{err}");

    let main = dir.write(
        "portcullis.yaml",
        "upstreams:\n  api:\n    url: http://127.0.0.1:1\npolicy_files: [\"p/*.yaml\"]\nroutes:\n  - path: /a\n    public: true\n",
    );
    let loaded = load(&main, Mode::Serve, &HashMap::new()).unwrap();
    assert!(loaded.warnings[0].message.contains("matches no file yet"));
    assert!(loaded.config.policy_globs[0].ends_with("p/*.yaml"));
}

/// Issuers 'a' (line 5) and 'b' (line 8), and a route that accepts only 'a'.
const B_IS_UNUSED: &str = r"upstreams:
  api:
    url: http://127.0.0.1:1
issuers:
  - name: a
    issuer: https://a.example.com
    audiences: [x]
  - name: b
    issuer: https://b.example.com
    audiences: [x]
routes:
  - path: /todos/**
    issuers: [a]
";

#[test]
fn warnings_for_shadowed_routes_and_unusable_issuers() {
    let dir = Dir::new();
    let shadowed = "  - path: /todos/{id}\n    methods: [GET]\n    issuers: [a]\n";
    let path = dir.write("portcullis.yaml", &format!("{B_IS_UNUSED}{shadowed}"));
    let loaded = load(&path, Mode::Check, &HashMap::new()).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains(":14:5: warning: route 'GET /todos/{id}' can never match: route '/todos/**' at "));
    assert!(warnings[1].contains(":8:5: warning: issuer 'b' is not usable by any route"));
}

#[test]
fn an_unusable_issuer_is_reported_at_its_own_line_after_an_invalid_one() {
    // An invalid first issuer (no audiences) is left out of the model; the
    // warning about 'b' must still name b's own line, now 10, not the line
    // of the entry that took its place in the list (a, at 7).
    let dir = Dir::new();
    let bad = "issuers:\n  - name: bad\n    issuer: https://bad.example.com\n";
    let path = dir.write("portcullis.yaml", &B_IS_UNUSED.replacen("issuers:\n", bad, 1));
    let err = load(&path, Mode::Check, &HashMap::new()).expect_err("issuer 'bad' has no audiences");
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(":5:5: issuer 'bad' has no audiences"), "{errors:?}");
    let warnings: Vec<String> =
        err.diagnostics.iter().filter(|d| d.severity == Severity::Warning).map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(":10:5: warning: issuer 'b' is not usable by any route"), "{warnings:?}");
}

#[test]
fn two_issuers_with_the_same_iss_are_refused() {
    let text = "upstreams:\n  api:\n    url: http://127.0.0.1:1\nissuers:\n  - name: a\n    issuer: https://x.example.com\n    audiences: [x]\n  - name: b\n    issuer: https://x.example.com\n    audiences: [y]\nroutes:\n  - path: /a\n";
    let errors = errors_of(text);
    assert_eq!(errors, ["9:13: issuer 'b' has the same 'issuer' as 'a'; tokens could not be told apart"]);
}

#[test]
fn several_errors_are_reported_at_once() {
    let errors = errors_of("listen: nowhere\nlog_level: loud\nthreads: 0\n");
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn an_unreadable_file_is_reported_by_name() {
    let err = load(Path::new("/nonexistent/portcullis.yaml"), Mode::Serve, &HashMap::new()).unwrap_err();
    assert!(err.to_string().starts_with("/nonexistent/portcullis.yaml: cannot read"), "{err}");
}

/// The upstream, issuer and route-list header the claim tests share.
const CLAIMS_BASE: &str = "upstreams:\n  api:\n    url: http://127.0.0.1:1\nissuers:\n  - name: sso\n    issuer: https://s.example.com\n    audiences: [a]\nroutes:\n";

#[test]
fn claim_conditions_load_with_one_list_of_claims() {
    use policy::{ClaimId, Condition, Literal};
    let dir = Dir::new();
    let routes = "  - path: /tenants/{tenant}/**\n    scopes: [orders:read]\n    claims:\n      tenant: \"{tenant}\"\n      email_verified: true\n      level: 3\n      groups: {any_of: [ops, sre]}\n      \"realm_access.roles\": {all_of: [reader]}\n      banned: {none_of: [yes-really]}\n      sub: {exists: true}\n  - path: /other/{tenant}\n    claims:\n      tenant: \"{tenant}\"\n      groups: {none_of: [guests]}\n";
    let path = dir.write("portcullis.yaml", &format!("{CLAIMS_BASE}{routes}"));
    let loaded = load(&path, Mode::Serve, &env_with_secret()).expect("valid claim conditions");
    let config = &loaded.config;
    let names: Vec<String> = config.condition_claims.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["tenant", "email_verified", "level", "groups", "realm_access.roles", "banned", "sub"]);
    let Access::Protected(first) = &config.routes[0].access else { panic!("protected") };
    let conditions: Vec<(usize, Condition)> = first.claims.iter().map(|c| (c.claim.0, c.condition.clone())).collect();
    assert_eq!(conditions[0], (0, Condition::EqualsSegment { name: "tenant".into(), index: 1 }));
    assert_eq!(conditions[1], (1, Condition::Equals(Literal::Bool(true))));
    assert_eq!(conditions[2], (2, Condition::Equals(Literal::Number(3.0))));
    assert_eq!(conditions[3], (3, Condition::AnyOf(vec!["ops".into(), "sre".into()])));
    assert_eq!(conditions[4], (4, Condition::AllOf(vec!["reader".into()])));
    assert_eq!(conditions[6], (6, Condition::Exists(true)));
    // The second route reuses the claims the first one listed.
    let Access::Protected(second) = &config.routes[1].access else { panic!("protected") };
    assert_eq!(second.claims[0].claim, ClaimId(0));
    assert_eq!(second.claims[1].claim, ClaimId(3));
    assert_eq!(second.claims[0].condition, Condition::EqualsSegment { name: "tenant".into(), index: 1 });
}

#[test]
fn claim_condition_mistakes_have_positions() {
    let cases = [
        (
            "  - path: /t/{tenant}\n    claims:\n      tenant: \"{tenat}\"\n",
            "11:15: the path pattern captures no '{tenat}' (it captures: {tenant})",
        ),
        ("  - path: /a\n    public: true\n    claims:\n      x: true\n", "9:5: a public route cannot also have claims"),
        (
            "  - path: /a\n    claims:\n      groups: {any_of: []}\n",
            "11:15: an empty list: any_of and all_of could never be decided by it",
        ),
        ("  - path: /a\n    claims:\n      groups: {any_of: [a], none_of: [b]}\n", "11:15: one operator per claim"),
        ("  - path: /a\n    claims:\n      groups: {}\n", "11:15: give one of any_of, all_of, none_of or exists"),
        ("  - path: /a\n    claims:\n      groups: {one_of: [a]}\n", "11:16: unknown field `one_of`"),
        ("  - path: /a\n    claims:\n      \"a..b\": x\n", "11:7: 'a..b' is not a claim name or dotted claim path"),
        (
            "  - path: /a\n    claims:\n      groups: [a, b]\n",
            "11:7: invalid type: sequence, expected a string, number or boolean",
        ),
    ];
    for (routes, expected) in cases {
        let errors = errors_of(&format!("{CLAIMS_BASE}{routes}"));
        assert!(errors.iter().any(|e| e.starts_with(expected)), "{routes:?}: got {errors:?}, want {expected}");
    }
}

#[test]
fn a_quoted_boolean_in_a_claim_condition_is_a_warning() {
    let dir = Dir::new();
    let routes = "  - path: /a\n    claims:\n      email_verified: \"true\"\n";
    let path = dir.write("portcullis.yaml", &format!("{CLAIMS_BASE}{routes}"));
    let loaded = load(&path, Mode::Serve, &env_with_secret()).expect("a warning, not an error");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.ends_with(
            ":11:23: warning: 'true' in quotes matches only the string; write true to match a boolean claim"
        )),
        "{warnings:?}"
    );
}

#[test]
fn audience_claims_and_required_claims_load() {
    let dir = Dir::new();
    let text = with_issuer(
        "    audiences: [client-1, client-2]\n    audience_claims: [client_id, ext.cid]\n    required_claims:\n      \
         token_use: access\n      azp: [web, \"true\"]\n      email_verified: true\n",
    );
    let path = dir.write("c.yaml", &text);
    let loaded = load(&path, Mode::Serve, &HashMap::new()).unwrap();
    let issuer = &loaded.config.issuers[0];
    assert_eq!(
        issuer.audience_claims,
        [ClaimPath(vec!["client_id".into()]), ClaimPath(vec!["ext".into(), "cid".into()])]
    );
    assert!(!issuer.audience_is_aud());
    let string = |text: &str| RequiredValue::String(text.into());
    assert_eq!(
        issuer.required_claims,
        [
            RequiredClaim { claim: ClaimPath(vec!["token_use".into()]), values: vec![string("access")] },
            RequiredClaim { claim: ClaimPath(vec!["azp".into()]), values: vec![string("web"), string("true")] },
            RequiredClaim { claim: ClaimPath(vec!["email_verified".into()]), values: vec![RequiredValue::Bool(true)] },
        ]
    );

    // Unless told otherwise the audience is `aud`, which jsonwebtoken checks.
    let path = dir.write("d.yaml", &with_issuer("    audiences: [a]\n"));
    let loaded = load(&path, Mode::Serve, &HashMap::new()).unwrap();
    assert_eq!(loaded.config.issuers[0].audience_claims, [ClaimPath(vec!["aud".into()])]);
    assert!(loaded.config.issuers[0].audience_is_aud());
    assert!(loaded.config.issuers[0].required_claims.is_empty());
}

#[test]
fn audience_claims_and_required_claims_mistakes_have_positions() {
    let cases: [(&str, &str); 9] = [
        ("    audiences: [a]\n    audience_claims: []\n", "8:22: audience_claims: [] reads the audience from nowhere"),
        ("    allow_any_audience: true\n    audience_claims: [client_id]\n", "8:22: audience_claims does nothing with"),
        ("    audiences: [a]\n    audience_claims: [client_id, a..b]\n", "8:34: 'a..b' is not a claim name"),
        ("    audiences: [a]\n    required_claims: {}\n", "8:22: required_claims: {} requires nothing"),
        (
            "    audiences: [a]\n    required_claims:\n      token_use: []\n",
            "9:18: required claim 'token_use' lists no value",
        ),
        ("    audiences: [a]\n    required_claims:\n      .typ: Bearer\n", "9:7: '.typ' is not a claim name"),
        ("    audiences: [a]\n    required_claims:\n      ver: 2\n", "9:7: invalid type: integer"),
        (
            "    audiences: [a]\n    required_claims:\n      typ: [[ID]]\n",
            "9:13: invalid type: sequence, expected a string or a boolean",
        ),
        ("    audiences: [a]\n    required_claims:\n      typ: {a: b}\n", "9:12: invalid type: map"),
    ];
    let wrong: Vec<_> = cases
        .iter()
        .map(|(extra, expected)| (expected, errors_of(&with_issuer(extra))))
        .filter(|(expected, errors)| !(errors.len() == 1 && errors[0].starts_with(**expected)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
