//! `api_keys`: the header keys may come in, and the key files' entries.
//!
//! A key file holds no key, only its SHA-256 (`portcullis keys new` prints
//! both). Problems that concern one entry are errors, like any policy
//! mistake, with two exceptions that fail closed without stopping a reload:
//! a key file that cannot be read (its keys are left out) and a second entry
//! with an id already used (it is left out, so a new entry can neither take
//! over nor disable a key in service). Both are warnings, as is an expired
//! key (refused when presented).

use serde_saphyr::Spanned;

use super::main_file::RESERVED_HEADERS;
use super::values::{is_name, is_token_byte};
use crate::diag::{Diagnostic, Position, Reporter, Severity};
use crate::file::{ApiKeysFile, KeyEntryFile, KeyFile, Text};
use crate::model::{ApiKey, ApiKeys, IdentityHeader};

/// Longest key id accepted (ids travel in clear inside every key).
const MAX_ID_LEN: usize = 64;

/// The `api_keys` section: the settings, and the key file globs to load.
pub(crate) fn api_keys(
    file: Option<Spanned<ApiKeysFile>>,
    identity_headers: &[IdentityHeader],
    token_issuers: &[String],
    r: &mut Reporter<'_>,
) -> (Option<ApiKeys>, Vec<Text>) {
    let Some(file) = file else { return (None, Vec::new()) };
    if file.value.files.is_empty() {
        r.error(&file, "api_keys.files is empty: name at least one key file or glob");
    }
    let section = file.value;
    let header = section.header.and_then(|name| {
        let lower = name.value.to_ascii_lowercase();
        if lower.is_empty() || !lower.bytes().all(is_token_byte) {
            r.error(&name, format!("'{}' is not a valid header name", name.value));
            return None;
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            let message = format!("'{}' cannot carry API keys (keys also come as 'Authorization: ApiKey')", name.value);
            r.error(&name, message);
            return None;
        }
        if identity_headers.iter().any(|h| h.name == lower) {
            r.error(&name, format!("'{}' is an identity header; API keys need a header of their own", name.value));
            return None;
        }
        Some(lower)
    });
    let mut issuers: Vec<String> = Vec::new();
    for name in section.issuers.iter().flatten() {
        if !is_name(&name.value) {
            r.error(name, format!("API key issuer '{}' must be letters, digits, '-' or '_'", name.value));
        } else if token_issuers.contains(&name.value) {
            r.error(
                name,
                format!("'{}' is already a token issuer's name; routes could not tell them apart", name.value),
            );
        } else if issuers.contains(&name.value) {
            r.error(name, format!("API key issuer '{}' is listed twice", name.value));
        } else {
            issuers.push(name.value.clone());
        }
    }
    (Some(ApiKeys { header, issuers, keys: Vec::new() }), section.files)
}

/// Add the entries of one key file to `keys`.
pub(crate) fn add_key_file(keys: &mut Vec<ApiKey>, issuers: &[String], file: KeyFile, now: u64, r: &mut Reporter<'_>) {
    for entry in file.keys.unwrap_or_default() {
        let Some(key) = key_entry(entry, issuers, now, r) else { continue };
        if let Some(first) = keys.iter().find(|k| k.id == key.id) {
            let message = format!(
                "API key id '{}' is already used at {}; this entry is ignored (ids must be unique)",
                key.id, first.position
            );
            r.out.push(Diagnostic { severity: Severity::Warning, position: key.position, message });
            continue;
        }
        keys.push(key);
    }
}

fn key_entry(entry: Spanned<KeyEntryFile>, issuers: &[String], now: u64, r: &mut Reporter<'_>) -> Option<ApiKey> {
    let location = entry.referenced;
    let entry = entry.value;
    let mut valid = true;
    let id = &entry.id.value;
    if !is_key_id(id) {
        let message = format!("API key id '{id}' must be 1 to {MAX_ID_LEN} ASCII letters, digits or '-'");
        r.error(&entry.id, message);
        valid = false;
    }
    let sha256 = sha256_hex(&entry.sha256.value);
    if sha256.is_none() {
        r.error(&entry.sha256, "sha256 must be the key's SHA-256 as 64 hex digits (`portcullis keys new` prints it)");
    }
    if entry.subject.value.trim().is_empty() || !entry.subject.value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        r.error(&entry.subject, "subject must be printable ASCII and not empty");
        valid = false;
    }
    let mut scopes = Vec::new();
    for scope in entry.scopes.iter().flatten() {
        if policy::is_scope_token(&scope.value) {
            scopes.push(scope.value.clone());
        } else {
            r.error(scope, format!("'{}' is not a valid scope (no spaces, quotes or backslashes)", scope.value));
            valid = false;
        }
    }
    let expires = match &entry.expires {
        None => None,
        Some(text) => match parse_time(&text.value) {
            Some(time) => {
                if time <= now {
                    r.warn(text, format!("API key '{id}' has expired ({}); it is refused", text.value));
                }
                Some(time)
            }
            None => {
                let message =
                    format!("expires: '{}' is not a UTC time like 2027-01-31T00:00:00Z or 2027-01-31", text.value);
                r.error(text, message);
                valid = false;
                None
            }
        },
    };
    let issuer = match &entry.issuer {
        None => None,
        Some(name) => {
            let index = issuers.iter().position(|declared| *declared == name.value);
            if index.is_none() {
                let defined = if issuers.is_empty() { "none are declared".to_owned() } else { issuers.join(", ") };
                r.error(name, format!("unknown API key issuer '{}' (api_keys.issuers: {defined})", name.value));
                valid = false;
            }
            index
        }
    };
    let sha256 = sha256?;
    if !valid {
        return None;
    }
    Some(ApiKey {
        id: id.clone(),
        sha256,
        subject: entry.subject.value,
        scopes,
        expires,
        note: entry.note.map(|n| n.value),
        issuer,
        position: Position::new(r.file, location),
    })
}

/// A key id: it is part of the key (`pk_<id>_<secret>`), so no `_`.
pub fn is_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// 64 hex digits (either case) as 32 bytes.
fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`, as Unix seconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time.strip_suffix(['Z', 'z'])?)),
        None => (text, None),
    };
    let mut date = date.split('-');
    let number = |part: Option<&str>, len: usize| {
        part.filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))?.parse::<u64>().ok()
    };
    let (year, month, day) = (number(date.next(), 4)?, number(date.next(), 2)?, number(date.next(), 2)?);
    if date.next().is_some() || !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day == 0 || day > month_days[usize::try_from(month - 1).ok()?] {
        return None;
    }
    let seconds = match time {
        None => 0,
        Some(time) => {
            let mut parts = time.split(':');
            let (h, m, s) = (number(parts.next(), 2)?, number(parts.next(), 2)?, number(parts.next(), 2)?);
            if parts.next().is_some() || h > 23 || m > 59 || s > 59 {
                return None;
            }
            h * 3600 + m * 60 + s
        }
    };
    let days_before_year: u64 =
        (1970..year).map(|y| if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) { 366 } else { 365 }).sum();
    let days_before_month: u64 = month_days[..usize::try_from(month - 1).ok()?].iter().sum();
    Some((days_before_year + days_before_month + day - 1) * 86_400 + seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_utc() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_time("2024-02-29T12:30:15Z"), Some(1_709_209_815));
        assert_eq!(parse_time("2023-02-29"), None);
        assert_eq!(parse_time("2027-01-31T00:00:00+02:00"), None);
        assert_eq!(parse_time("2027-1-31"), None);
        assert_eq!(parse_time("2027-01-31T24:00:00Z"), None);
    }

    #[test]
    fn hashes_and_ids() {
        let hex = "00ff".repeat(16);
        assert_eq!(sha256_hex(&hex).map(|h| (h[0], h[1])), Some((0x00, 0xff)));
        assert_eq!(sha256_hex(&hex.to_uppercase()).map(|h| h[1]), Some(0xff));
        assert!(sha256_hex(&hex[1..]).is_none());
        assert!(sha256_hex(&"zz".repeat(32)).is_none());
        assert!(is_key_id("ci-deploy-1"));
        assert!(!is_key_id("has_underscore"));
        assert!(!is_key_id(""));
    }
}
