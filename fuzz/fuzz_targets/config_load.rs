//! The configuration loader: YAML text to a validated `Config`.
//!
//! Input: the main file's text (UTF-8), loaded as `fuzz.yaml` in check mode
//! with no environment variables.
//!
//! Inputs that mention `policy_files` (or that contain a backslash, which a
//! double-quoted YAML key could use to spell it) are skipped: that key makes
//! the loader glob the file system, which is the operator's own business and
//! would make the fuzzer walk the disk instead of testing the parser.
//!
//! Invariants:
//! - never a panic, whatever the YAML (anchors, aliases, tags, deep nesting);
//! - an error result holds at least one error; a success holds none;
//! - every diagnostic names fuzz.yaml, a non-empty message, and a position
//!   that is the whole file (0:0) or a 1-based line inside the text;
//! - on success: every route's pattern round-trips through Display and
//!   parse, every index a route holds (upstream, rate limits, issuers) is in
//!   range, route origins pair up with routes, issuers never mix HMAC with
//!   public-key algorithms and always have an audience or allow_any_audience,
//!   identity headers are lower case and unique, and the route table builds.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use config::{load_str, KeySource, Mode, Severity};
use libfuzzer_sys::fuzz_target;
use policy::{Access, PathPattern, RouteTable};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains("policy_files") || text.contains('\\') {
        return;
    }
    let path = Path::new("fuzz.yaml");
    // YAML breaks lines at \n, \r\n and a lone \r (counted generously: any of
    // the Unicode line breaks, so a position is never wrongly out of range).
    let lines =
        1 + text.chars().filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')).count() as u64;
    let result = load_str(path, text, Mode::Check, &|_| None);
    let diagnostics = match &result {
        Ok(loaded) => &loaded.warnings,
        Err(error) => &error.diagnostics,
    };
    for d in diagnostics {
        assert_eq!(d.position.file, path, "{d}");
        assert!(!d.message.is_empty(), "empty message at {}", d.position);
        let whole_file = d.position.line == 0 && d.position.column == 0;
        assert!(
            whole_file || (d.position.line >= 1 && d.position.line <= lines && d.position.column >= 1),
            "bad position {}:{} for {:?} (text has {lines} lines)",
            d.position.line,
            d.position.column,
            d.message
        );
        let _ = d.to_string();
    }
    let loaded = match result {
        Err(error) => {
            assert!(error.errors().next().is_some(), "an error result without an error");
            let _ = error.to_string();
            return;
        }
        Ok(loaded) => loaded,
    };
    assert!(loaded.warnings.iter().all(|d| d.severity == Severity::Warning), "a success with an error");
    let config = &loaded.config;

    assert_eq!(config.routes.len(), config.route_origins.len(), "routes and origins do not pair up");
    for route in &config.routes {
        let text = route.pattern.to_string();
        assert_eq!(PathPattern::parse(&text).as_ref(), Ok(&route.pattern), "pattern {text:?} does not round-trip");
        assert!(route.upstream < config.upstreams.len(), "route {} names upstream {}", route.name, route.upstream);
        for &limit in &route.rate_limits {
            assert!(limit < config.rate_limits.len(), "route {} names rate limit {limit}", route.name);
        }
        if let Access::Protected(requirement) = &route.access {
            assert!(!config.issuers.is_empty(), "protected route {} with no issuer", route.name);
            for id in requirement.issuers.iter().flatten() {
                assert!(id.0 < config.issuers.len(), "route {} names issuer {}", route.name, id.0);
            }
        }
    }
    let mut iss = HashSet::new();
    for issuer in &config.issuers {
        assert!(!issuer.algorithms.is_empty(), "issuer {} accepts no algorithm", issuer.name);
        let hmac = issuer.algorithms.iter().filter(|a| a.is_hmac()).count();
        assert!(hmac == 0 || hmac == issuer.algorithms.len(), "issuer {} mixes HMAC and public keys", issuer.name);
        assert_eq!(hmac > 0, matches!(issuer.keys, KeySource::Secret { .. }), "issuer {} key source", issuer.name);
        assert!(issuer.any_audience || !issuer.audiences.is_empty(), "issuer {} has no audience", issuer.name);
        assert!(issuer.audiences.iter().all(|a| !a.is_empty()));
        assert!(iss.insert(issuer.issuer.as_str()), "two issuers with iss {:?}", issuer.issuer);
    }
    let mut names = HashSet::new();
    for header in &config.identity_headers {
        assert_eq!(header.name, header.name.to_ascii_lowercase(), "identity header not lower case");
        assert!(names.insert(header.name.as_str()), "identity header {} twice", header.name);
        assert!(header.name != "authorization" && header.name != "host", "reserved header {}", header.name);
    }
    let table = RouteTable::new(config.routes.clone());
    assert_eq!(table.len(), config.routes.len());
    for shadowed in table.shadowed() {
        assert!(shadowed.by < shadowed.route && shadowed.route < table.len());
    }
});
