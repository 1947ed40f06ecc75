//! [`TestConfig`]: the standard test configuration as a value that a test
//! changes through methods and then renders as YAML.
//!
//! Tests used to patch the rendered text with `str::replace`; when the
//! fixture's text changed, such a patch silently did nothing and the test
//! went on checking the unpatched configuration. A method here either sets
//! what it names or panics (a route path that is not exactly one route).
//!
//! Values are YAML written the way they appear after `key: ` — a scalar
//! (`300ms`, `"renamed"`) or a flow collection (`["at+jwt"]`,
//! `{key: client_ip, limit: 2, per: 1m}`). Setting a key that is already
//! there replaces its value in place, so a key is never written twice.

use crate::fixtures::{AUDIENCE, HS_ENV, HS_ISSUER};

/// Ordered `key: value` fields of one YAML mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn of(pairs: &[(&str, &str)]) -> Fields {
        let mut fields = Fields::default();
        for (key, value) in pairs {
            fields.set(key, value);
        }
        fields
    }

    /// Replace `key`'s value, or add it at the end.
    fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value.to_owned(),
            None => self.0.push((key.to_owned(), value.to_owned())),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// One `key: value` line each, the first after `first_prefix` and the
    /// others after `prefix` (for `  - ` list items).
    fn render(&self, first_prefix: &str, prefix: &str, out: &mut String) {
        for (index, (key, value)) in self.0.iter().enumerate() {
            out.push_str(if index == 0 { first_prefix } else { prefix });
            out.push_str(&format!("{key}: {value}\n"));
        }
    }
}

/// The standard configuration of [`crate::fixtures::standard_config`]: an
/// upstream `api`, the discovery issuer `sso` and the HS256 issuer `local`,
/// four identity headers and six routes.
#[derive(Debug, Clone)]
pub struct TestConfig {
    main: Fields,
    upstream: Fields,
    sso: Fields,
    local: Fields,
    rate_limits: Fields,
    extra: String,
    leading_routes: Vec<Fields>,
    routes: Vec<Fields>,
}

impl TestConfig {
    /// The standard configuration for `issuer` (a discovery URL) and
    /// `upstream` (the URL of the upstream `api`).
    pub fn new(issuer: &str, upstream: &str) -> TestConfig {
        let quoted = |text: &str| format!("\"{text}\"");
        TestConfig {
            main: Fields::of(&[("realm", "\"test-api\""), ("threads", "2")]),
            upstream: Fields::of(&[("url", &quoted(upstream))]),
            sso: Fields::of(&[
                ("name", "sso"),
                ("issuer", &quoted(issuer)),
                ("audiences", &format!("[\"{AUDIENCE}\"]")),
                ("algorithms", "[\"RS256\", \"PS256\", \"ES256\", \"EdDSA\"]"),
                ("min_refresh_interval", "1s"),
                ("http_timeout", "2s"),
            ]),
            local: Fields::of(&[
                ("name", "local"),
                ("issuer", &quoted(HS_ISSUER)),
                ("algorithms", "[\"HS256\"]"),
                ("secret_env", &quoted(HS_ENV)),
                ("audiences", &format!("[\"{AUDIENCE}\"]")),
            ]),
            rate_limits: Fields::default(),
            extra: String::new(),
            leading_routes: Vec::new(),
            routes: [
                &[("path", "/healthz"), ("public", "true")][..],
                &[("path", "/public/**"), ("public", "true")],
                &[("path", "/todos/**"), ("methods", "[GET]"), ("scopes", "[tasks:read]")],
                &[("path", "/todos/**"), ("methods", "[POST, PUT, PATCH, DELETE]"), ("scopes", "[tasks:write]")],
                &[("path", "/admin/**"), ("any_scopes", "[admin, superuser]")],
                &[("path", "/sso-only/**"), ("issuers", "[sso]")],
            ]
            .iter()
            .map(|fields| Fields::of(fields))
            .collect(),
        }
    }

    /// A top-level setting (`log_format`, `trusted_proxies`, `realm`, ...).
    pub fn main_option(mut self, key: &str, value: &str) -> TestConfig {
        self.main.set(key, value);
        self
    }

    /// `realm:` (quoted here).
    pub fn realm(self, realm: &str) -> TestConfig {
        self.main_option("realm", &format!("\"{realm}\""))
    }

    /// A setting of the upstream `api` (`read_timeout`, ...).
    pub fn upstream_option(mut self, key: &str, value: &str) -> TestConfig {
        self.upstream.set(key, value);
        self
    }

    /// A setting of the discovery issuer `sso` (`token_types`,
    /// `jwks_refresh`, `introspection`, ...).
    pub fn issuer_option(mut self, key: &str, value: &str) -> TestConfig {
        self.sso.set(key, value);
        self
    }

    /// The rate limit `name` under `rate_limits:`, its settings as a flow
    /// mapping: `{key: client_ip, limit: 2, per: 1m}`.
    pub fn rate_limit(mut self, name: &str, settings: &str) -> TestConfig {
        self.rate_limits.set(name, settings);
        self
    }

    /// A setting of the one standard route whose `path` is `path` (panics
    /// when no route or several have it: `/todos/**` is two routes).
    pub fn route_option(mut self, path: &str, key: &str, value: &str) -> TestConfig {
        let mut matching = self.routes.iter_mut().filter(|route| route.get("path") == Some(path));
        let route = matching.next().unwrap_or_else(|| panic!("no standard route has path {path}"));
        assert!(matching.next().is_none(), "several standard routes have path {path}: name one that is unique");
        route.set(key, value);
        self
    }

    /// A route in front of the standard ones (after those added before it).
    pub fn leading_route(mut self, fields: &[(&str, &str)]) -> TestConfig {
        assert!(fields.first().is_some_and(|(key, _)| *key == "path"), "a route starts with its path: {fields:?}");
        self.leading_routes.push(Fields::of(fields));
        self
    }

    /// Top-level YAML written as is after the identity headers (more rate
    /// limits, `tokens:`, ...). It only adds: it cannot patch the rest.
    pub fn extra(mut self, yaml: &str) -> TestConfig {
        self.extra.push_str(yaml);
        self
    }

    /// The YAML text. With no method called it is the text
    /// `standard_config` has always produced.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.main.render("", "", &mut out);
        out.push_str("upstreams:\n  api:\n");
        self.upstream.render("    ", "    ", &mut out);
        out.push_str("issuers:\n");
        self.sso.render("  - ", "    ", &mut out);
        self.local.render("  - ", "    ", &mut out);
        out.push_str(
            "identity_headers:\n  X-Auth-Subject: sub\n  X-Auth-Issuer: iss\n  X-Auth-Scopes: scopes\n  X-Auth-Email: \
             email\n",
        );
        if !self.rate_limits.0.is_empty() {
            out.push_str("rate_limits:\n");
            self.rate_limits.render("  ", "  ", &mut out);
        }
        out.push_str(&self.extra);
        out.push_str("\nroutes:\n");
        for route in self.leading_routes.iter().chain(&self.routes) {
            route.render("  - ", "    ", &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::TestConfig;

    /// The text `standard_config` rendered before the builder existed.
    const STANDARD: &str = r#"realm: "test-api"
threads: 2
upstreams:
  api:
    url: "http://127.0.0.1:1"
issuers:
  - name: sso
    issuer: "http://127.0.0.1:2"
    audiences: ["todo-api"]
    algorithms: ["RS256", "PS256", "ES256", "EdDSA"]
    min_refresh_interval: 1s
    http_timeout: 2s
  - name: local
    issuer: "local-issuer"
    algorithms: ["HS256"]
    secret_env: "TEST_HS_SECRET"
    audiences: ["todo-api"]
identity_headers:
  X-Auth-Subject: sub
  X-Auth-Issuer: iss
  X-Auth-Scopes: scopes
  X-Auth-Email: email
EXTRA
routes:
  - path: /healthz
    public: true
  - path: /public/**
    public: true
  - path: /todos/**
    methods: [GET]
    scopes: [tasks:read]
  - path: /todos/**
    methods: [POST, PUT, PATCH, DELETE]
    scopes: [tasks:write]
  - path: /admin/**
    any_scopes: [admin, superuser]
  - path: /sso-only/**
    issuers: [sso]
"#;

    fn standard() -> TestConfig {
        TestConfig::new("http://127.0.0.1:2", "http://127.0.0.1:1")
    }

    #[test]
    fn unchanged_it_renders_the_standard_text() {
        assert_eq!(standard().render(), STANDARD.replacen("EXTRA", "", 1));
        assert_eq!(
            standard().extra("tokens:\n  max_bytes: 2048\n").render(),
            STANDARD.replacen("EXTRA", "tokens:\n  max_bytes: 2048\n", 1)
        );
    }

    #[test]
    fn each_option_lands_in_its_own_mapping() {
        let text = standard()
            .realm("renamed")
            .main_option("log_format", "json")
            .upstream_option("read_timeout", "300ms")
            .issuer_option("token_types", "[\"at+jwt\"]")
            .issuer_option("http_timeout", "5s")
            .render();
        assert!(text.starts_with("realm: \"renamed\"\nthreads: 2\nlog_format: json\nupstreams:\n"), "{text}");
        assert!(text.contains("    url: \"http://127.0.0.1:1\"\n    read_timeout: 300ms\nissuers:\n"), "{text}");
        assert!(
            text.contains(
                "    min_refresh_interval: 1s\n    http_timeout: 5s\n    token_types: [\"at+jwt\"]\n  - name: local\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("http_timeout").count(), 1, "{text}");
        assert_eq!(text.matches("realm").count(), 1, "{text}");
    }

    #[test]
    fn rate_limits_and_routes() {
        let text = standard()
            .rate_limit("tight", "{key: client_ip, limit: 2, per: 1m}")
            .rate_limit("tight", "{key: client_ip, limit: 3, per: 1m}")
            .route_option("/public/**", "rate_limit", "tight")
            .leading_route(&[("path", "/login"), ("public", "true")])
            .leading_route(&[("path", "/me"), ("rate_limit", "[tight]")])
            .render();
        assert!(
            text.contains(
                "  X-Auth-Email: email\nrate_limits:\n  tight: {key: client_ip, limit: 3, per: 1m}\n\nroutes:\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "routes:\n  - path: /login\n    public: true\n  - path: /me\n    rate_limit: [tight]\n  - path: /healthz\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  - path: /public/**\n    public: true\n    rate_limit: tight\n  - path: /todos/**\n"),
            "{text}"
        );
    }

    #[test]
    #[should_panic(expected = "no standard route has path /nowhere")]
    fn an_option_for_a_route_that_is_not_there_panics() {
        let _ = standard().route_option("/nowhere", "public", "true");
    }

    #[test]
    #[should_panic(expected = "several standard routes have path /todos/**")]
    fn an_option_for_an_ambiguous_route_panics() {
        let _ = standard().route_option("/todos/**", "public", "true");
    }
}
