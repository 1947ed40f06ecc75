//! `cors:`, in the main file (every route's default) and on a route (that
//! route's own policy): origins, methods and headers checked one by one, so
//! an operator learns every mistake at its line.

use std::sync::Arc;

use policy::cors::{CorsPolicy, CorsSpec, OriginPattern};
use serde_saphyr::Spanned;

use super::values::{duration, is_token_byte};
use crate::diag::Reporter;
use crate::file::{CorsFile, Text};

/// Methods allowed when `allow_methods` is absent: the ones a browser sends
/// cross-origin anyway.
const DEFAULT_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];
/// Request headers allowed when `allow_headers` is absent: what an app
/// calling a JSON API with a bearer token sends.
const DEFAULT_HEADERS: [&str; 2] = ["authorization", "content-type"];
/// Seconds a browser may cache a preflight answer when `max_age` is absent.
const DEFAULT_MAX_AGE: u64 = 600;
/// Firefox's cap; Chromium caps at two hours.
const MAX_MAX_AGE: u64 = 86_400;

/// The policy a `cors:` section describes; `None` when it allows no origin
/// (CORS off) or is invalid (reported).
pub(super) fn cors(file: &Spanned<CorsFile>, r: &mut Reporter<'_>) -> Option<Arc<CorsPolicy>> {
    let section = &file.value;
    let origins = origins(&section.allow_origins, r);
    let methods = match &section.allow_methods {
        Some(list) => list.iter().filter_map(|m| method(m, r)).collect(),
        None => DEFAULT_METHODS.map(str::to_owned).to_vec(),
    };
    let allow_headers = match &section.allow_headers {
        Some(list) => header_names(list, "allow_headers", r),
        None => DEFAULT_HEADERS.map(str::to_owned).to_vec(),
    };
    let expose_headers = header_names(section.expose_headers.as_deref().unwrap_or_default(), "expose_headers", r);
    let max_age_seconds = match &section.max_age {
        None => Some(DEFAULT_MAX_AGE),
        Some(text) => duration(text, r).and_then(|d| match d.as_secs() {
            seconds if seconds > MAX_MAX_AGE => {
                r.error(text, "max_age may be at most 24h (browsers cap it: Chromium at 2h, Firefox at 24h)");
                None
            }
            seconds => Some(seconds),
        }),
    };
    let allow_credentials = section.allow_credentials.as_ref().is_some_and(|c| c.value);
    let spec =
        CorsSpec { origins: origins?, methods, allow_headers, expose_headers, allow_credentials, max_age_seconds };
    if spec.origins.is_empty() {
        return None;
    }
    CorsPolicy::new(spec).map(Arc::new).map_err(|e| r.error(file, e.to_string())).ok()
}

/// `allow_origins`, each parsed; `None` when any is invalid.
fn origins(list: &[Text], r: &mut Reporter<'_>) -> Option<Vec<OriginPattern>> {
    let mut out: Vec<OriginPattern> = Vec::new();
    let mut valid = true;
    for text in list {
        match OriginPattern::parse(&text.value) {
            Ok(pattern) if out.contains(&pattern) => r.warn(text, format!("origin '{}' is listed twice", text.value)),
            Ok(pattern) => out.push(pattern),
            Err(e) => {
                r.error(text, format!("origin '{}': {e}", text.value));
                valid = false;
            }
        }
    }
    valid.then_some(out)
}

/// A method name: an RFC 9110 token, which compares case-sensitively.
fn method(text: &Text, r: &mut Reporter<'_>) -> Option<String> {
    let name = &text.value;
    if name == "*" {
        r.error(text, "list the methods: '*' is not allowed");
        return None;
    }
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        r.error(text, format!("'{name}' is not a method name"));
        return None;
    }
    let upper = name.to_ascii_uppercase();
    if upper != *name && ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&upper.as_str()) {
        r.error(text, format!("methods are case-sensitive: write '{upper}'"));
        return None;
    }
    Some(name.clone())
}

/// Header names, lower case; `*` is refused because it never covers
/// `Authorization` and means nothing with credentials.
fn header_names(list: &[Text], field: &str, r: &mut Reporter<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in list {
        let name = text.value.to_ascii_lowercase();
        if name == "*" {
            r.error(
                text,
                format!("{field}: list the headers; '*' never covers Authorization and means nothing with credentials"),
            );
        } else if name.is_empty() || !name.bytes().all(is_token_byte) {
            r.error(text, format!("{field}: '{}' is not a header name", text.value));
        } else if out.contains(&name) {
            r.warn(text, format!("{field}: '{}' is listed twice", text.value));
        } else {
            out.push(name);
        }
    }
    out
}
