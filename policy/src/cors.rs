//! Cross-origin resource sharing (the Fetch standard's CORS protocol): which
//! browser origins may read a route's answers, and the answer to a
//! preflight. Pure data and functions: the proxy reads the `Origin` and
//! `Access-Control-Request-*` headers, asks here, and writes what it is told.
//!
//! CORS is not access control for the API (any non-browser client ignores
//! it); it decides what a browser lets a script on another origin read. The
//! route's policy still decides every actual request.

use thiserror::Error;

/// The methods a browser sends cross-origin without listing them in a
/// preflight answer (Fetch: CORS-safelisted methods).
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// Headers of the proxy's own answers a script may need to read why it was
/// refused; exposed on those answers in addition to the configured ones.
/// `grpc-status` and `grpc-message` carry a gRPC-Web refusal.
pub const REFUSAL_HEADERS: [&str; 6] =
    ["www-authenticate", "retry-after", "ratelimit", "ratelimit-policy", "grpc-status", "grpc-message"];

/// An origin a CORS policy allows, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: every origin, answered with `*` (only without credentials).
    Any,
    /// One serialised origin, `scheme://host[:port]`, lower case.
    Exact(String),
    /// `scheme://*.domain[:port]`: every host strictly below `domain`.
    Subdomains {
        /// `https://` or `http://`.
        scheme: String,
        /// `.domain` (with its leading dot), lower case.
        suffix: String,
        /// `:port`, or empty for the scheme's default.
        port: String,
    },
}

/// Why a configured origin is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OriginError {
    #[error("an origin is 'scheme://host[:port]' with scheme http or https")]
    Scheme,
    #[error("an origin is only 'scheme://host[:port]': no path, query, user name or trailing '/'")]
    Path,
    #[error(
        "'null' is the origin of sandboxed documents and local files, which any page can create; it cannot be allowed"
    )]
    Null,
    #[error("a wildcard must be the whole leftmost label of the host, as in 'https://*.example.com'")]
    Wildcard,
    #[error("invalid host")]
    Host,
    #[error("invalid port")]
    Port,
}

impl OriginPattern {
    /// Parse a configured origin: `*`, `https://app.example.com`,
    /// `http://127.0.0.1:8080` or `https://*.example.com`.
    pub fn parse(text: &str) -> Result<OriginPattern, OriginError> {
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        if text.eq_ignore_ascii_case("null") {
            return Err(OriginError::Null);
        }
        let lower = text.to_ascii_lowercase();
        let (scheme, rest) = ["https://", "http://"]
            .into_iter()
            .find_map(|scheme| lower.strip_prefix(scheme).map(|rest| (scheme, rest)))
            .ok_or(OriginError::Scheme)?;
        if rest.contains(['/', '?', '#', '@']) {
            return Err(OriginError::Path);
        }
        let (host, port) = split_port(rest).ok_or(OriginError::Port)?;
        match host.strip_prefix("*.") {
            Some(domain) => {
                if domain.contains('*') || !is_host(domain) || !domain.contains('.') {
                    return Err(OriginError::Wildcard);
                }
                Ok(OriginPattern::Subdomains {
                    scheme: scheme.to_owned(),
                    suffix: format!(".{domain}"),
                    port: port.to_owned(),
                })
            }
            None if host.contains('*') => Err(OriginError::Wildcard),
            None if is_host(host) => Ok(OriginPattern::Exact(lower)),
            None => Err(OriginError::Host),
        }
    }

    /// Whether a request's `Origin` header value is this pattern's.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(allowed) => allowed == origin,
            OriginPattern::Subdomains { scheme, suffix, port } => {
                let Some(rest) = origin.strip_prefix(scheme.as_str()) else { return false };
                let Some((host, origin_port)) = split_port(rest) else { return false };
                let Some(below) = host.strip_suffix(suffix.as_str()) else { return false };
                // Strictly below the domain, and a real host name: no empty
                // label, nothing a browser would not have serialised.
                origin_port == port && !below.is_empty() && is_host(below)
            }
        }
    }
}

/// `host[:port]` → (host, `:port` or empty); `None` for a bad port.
fn split_port(authority: &str) -> Option<(&str, &str)> {
    // An IPv6 literal keeps its colons inside brackets.
    let port_start = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => i,
        _ => return Some((authority, "")),
    };
    let (host, port) = authority.split_at(port_start);
    let digits = &port[1..];
    let valid = !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then_some((host, port))
}

/// A lower-case DNS name or IP literal as browsers serialise it.
fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// One CORS policy: a route's, or the main file's default for routes that
/// set none. Header values are rendered once, when the policy is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Vec<OriginPattern>,
    /// Upper-case method names as configured.
    methods: Vec<String>,
    /// Lower-case request header names.
    allow_headers: Vec<String>,
    allow_credentials: bool,
    max_age_seconds: Option<u64>,
    allow_methods_value: String,
    allow_headers_value: String,
    expose_headers_value: String,
    /// The configured exposed headers plus [`REFUSAL_HEADERS`].
    expose_on_refusal_value: String,
}

/// Why a policy cannot be built (the config reports it at the `cors:` key).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CorsError {
    #[error("allow_origins: '*' with allow_credentials: true would let every site read answers made with the user's credentials; list the origins")]
    AnyWithCredentials,
}

/// What a CORS policy is made of, as validated by the configuration.
#[derive(Debug, Clone, Default)]
pub struct CorsSpec {
    pub origins: Vec<OriginPattern>,
    pub methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_seconds: Option<u64>,
}

/// A preflight request's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    /// Answer with the policy's preflight headers for this origin.
    Allowed,
    /// The origin is not allowed: no CORS headers at all.
    OriginNotAllowed,
    /// The requested method is not allowed.
    MethodNotAllowed,
    /// A requested header is not allowed.
    HeaderNotAllowed,
}

impl CorsPolicy {
    /// Build a policy; names are normalised (methods upper case as HTTP
    /// compares them case-sensitively, header names lower case).
    pub fn new(spec: CorsSpec) -> Result<CorsPolicy, CorsError> {
        if spec.allow_credentials && spec.origins.contains(&OriginPattern::Any) {
            return Err(CorsError::AnyWithCredentials);
        }
        let allow_headers: Vec<String> = spec.allow_headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        let expose: Vec<String> = spec.expose_headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        let mut on_refusal = expose.clone();
        on_refusal.extend(REFUSAL_HEADERS.iter().filter(|h| !expose.iter().any(|e| e == *h)).map(|h| (*h).to_owned()));
        Ok(CorsPolicy {
            allow_methods_value: spec.methods.join(", "),
            allow_headers_value: allow_headers.join(", "),
            expose_headers_value: expose.join(", "),
            expose_on_refusal_value: on_refusal.join(", "),
            origins: spec.origins,
            methods: spec.methods,
            allow_headers,
            allow_credentials: spec.allow_credentials,
            max_age_seconds: spec.max_age_seconds,
        })
    }

    /// The value of `Access-Control-Allow-Origin` for a request from
    /// `origin`: the origin itself (or `*` for a policy open to all without
    /// credentials); `None` when the origin is not allowed.
    pub fn allow_origin<'o>(&self, origin: &'o str) -> Option<&'o str> {
        if origin.eq_ignore_ascii_case("null") {
            return None;
        }
        let pattern = self.origins.iter().find(|p| p.matches(origin))?;
        Some(if *pattern == OriginPattern::Any { "*" } else { origin })
    }

    /// Decide a preflight from `origin` for `method` with the
    /// `Access-Control-Request-Headers` value `request_headers`.
    pub fn preflight(&self, origin: &str, method: &str, request_headers: Option<&str>) -> Preflight {
        if self.allow_origin(origin).is_none() {
            return Preflight::OriginNotAllowed;
        }
        if !SAFELISTED_METHODS.contains(&method) && !self.methods.iter().any(|m| m == method) {
            return Preflight::MethodNotAllowed;
        }
        let requested = request_headers.unwrap_or("").split(',').map(str::trim).filter(|h| !h.is_empty());
        for header in requested {
            if !self.allow_headers.iter().any(|allowed| allowed.eq_ignore_ascii_case(header)) {
                return Preflight::HeaderNotAllowed;
            }
        }
        Preflight::Allowed
    }

    pub fn allow_credentials(&self) -> bool {
        self.allow_credentials
    }

    pub fn max_age_seconds(&self) -> Option<u64> {
        self.max_age_seconds
    }

    /// `Access-Control-Allow-Methods` of a preflight answer.
    pub fn allow_methods_value(&self) -> &str {
        &self.allow_methods_value
    }

    /// `Access-Control-Allow-Headers` of a preflight answer (may be empty).
    pub fn allow_headers_value(&self) -> &str {
        &self.allow_headers_value
    }

    /// `Access-Control-Expose-Headers` of an upstream answer (may be empty).
    pub fn expose_headers_value(&self) -> &str {
        &self.expose_headers_value
    }

    /// `Access-Control-Expose-Headers` of the proxy's own refusals.
    pub fn expose_on_refusal_value(&self) -> &str {
        &self.expose_on_refusal_value
    }

    /// The configured origins, for `explain`.
    pub fn origins(&self) -> &[OriginPattern] {
        &self.origins
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginPattern::Any => f.write_str("*"),
            OriginPattern::Exact(origin) => f.write_str(origin),
            OriginPattern::Subdomains { scheme, suffix, port } => write!(f, "{scheme}*{suffix}{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy::new(CorsSpec {
            origins: origins.iter().map(|o| OriginPattern::parse(o).unwrap()).collect(),
            methods: vec!["GET".into(), "PUT".into()],
            allow_headers: vec!["Authorization".into(), "content-type".into()],
            expose_headers: vec!["X-Request-Id".into()],
            allow_credentials: credentials,
            max_age_seconds: Some(600),
        })
        .unwrap()
    }

    #[test]
    fn origins_parse_to_exact_origins_and_subdomain_patterns() {
        assert_eq!(
            OriginPattern::parse("https://App.Example.com").unwrap(),
            OriginPattern::Exact("https://app.example.com".into())
        );
        assert_eq!(
            OriginPattern::parse("http://127.0.0.1:8080").unwrap(),
            OriginPattern::Exact("http://127.0.0.1:8080".into())
        );
        assert_eq!(
            OriginPattern::parse("https://*.example.com").unwrap(),
            OriginPattern::Subdomains { scheme: "https://".into(), suffix: ".example.com".into(), port: String::new() }
        );
        assert_eq!(OriginPattern::parse("*").unwrap(), OriginPattern::Any);
        for (bad, error) in [
            ("app.example.com", OriginError::Scheme),
            ("ftp://app.example.com", OriginError::Scheme),
            ("https://app.example.com/", OriginError::Path),
            ("https://app.example.com/x", OriginError::Path),
            ("https://user@app.example.com", OriginError::Path),
            ("null", OriginError::Null),
            ("https://*", OriginError::Wildcard),
            ("https://*.com", OriginError::Wildcard),
            ("https://a*.example.com", OriginError::Wildcard),
            ("https://app.*.example.com", OriginError::Wildcard),
            ("https://*.*.example.com", OriginError::Wildcard),
            ("https://app..example.com", OriginError::Host),
            ("https://app.example.com:", OriginError::Port),
            ("https://app.example.com:http", OriginError::Port),
        ] {
            assert_eq!(OriginPattern::parse(bad), Err(error), "{bad}");
        }
    }

    #[test]
    fn a_subdomain_pattern_matches_only_hosts_strictly_below_its_domain() {
        let pattern = OriginPattern::parse("https://*.example.com").unwrap();
        for good in ["https://app.example.com", "https://a.b.example.com", "https://x-1.example.com"] {
            assert!(pattern.matches(good), "{good}");
        }
        for bad in [
            "https://example.com",
            "https://.example.com",
            "https://evilexample.com",
            "https://evil-example.com",
            "https://app.example.com.evil.net",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://a..example.com",
            "https://app.example.com/",
            "https://APP.example.com",
            "null",
        ] {
            assert!(!pattern.matches(bad), "{bad}");
        }
        let with_port = OriginPattern::parse("https://*.example.com:8443").unwrap();
        assert!(with_port.matches("https://app.example.com:8443"));
        assert!(!with_port.matches("https://app.example.com"));
    }

    #[test]
    fn the_allowed_origin_is_echoed_exactly_and_star_only_without_credentials() {
        let exact = policy(&["https://app.example.com"], true);
        assert_eq!(exact.allow_origin("https://app.example.com"), Some("https://app.example.com"));
        assert_eq!(exact.allow_origin("https://app.example.com:443"), None);
        assert_eq!(exact.allow_origin("https://other.example.com"), None);
        let open = policy(&["*"], false);
        assert_eq!(open.allow_origin("https://anyone.example"), Some("*"));
        assert_eq!(open.allow_origin("null"), None);
        let spec = CorsSpec { origins: vec![OriginPattern::Any], allow_credentials: true, ..CorsSpec::default() };
        assert_eq!(CorsPolicy::new(spec), Err(CorsError::AnyWithCredentials));
    }

    #[test]
    fn preflights_check_origin_method_and_every_requested_header() {
        let p = policy(&["https://app.example.com"], true);
        let origin = "https://app.example.com";
        assert_eq!(p.preflight(origin, "PUT", Some("authorization, Content-Type")), Preflight::Allowed);
        assert_eq!(p.preflight(origin, "PUT", None), Preflight::Allowed);
        // Safelisted methods need no listing (Fetch).
        assert_eq!(p.preflight(origin, "POST", Some("authorization")), Preflight::Allowed);
        assert_eq!(p.preflight(origin, "DELETE", None), Preflight::MethodNotAllowed);
        // Methods compare case-sensitively (RFC 9110).
        assert_eq!(p.preflight(origin, "put", None), Preflight::MethodNotAllowed);
        assert_eq!(p.preflight(origin, "PUT", Some("authorization, x-evil")), Preflight::HeaderNotAllowed);
        assert_eq!(p.preflight("https://evil.example", "GET", None), Preflight::OriginNotAllowed);
    }

    #[test]
    fn header_values_are_rendered_once() {
        let p = policy(&["https://app.example.com"], true);
        assert_eq!(p.allow_methods_value(), "GET, PUT");
        assert_eq!(p.allow_headers_value(), "authorization, content-type");
        assert_eq!(p.expose_headers_value(), "x-request-id");
        assert_eq!(
            p.expose_on_refusal_value(),
            "x-request-id, www-authenticate, retry-after, ratelimit, ratelimit-policy, grpc-status, grpc-message"
        );
    }
}
