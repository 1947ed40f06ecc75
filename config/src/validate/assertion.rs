//! `upstream_assertion:`: the signing key (read from its file, its kind
//! recognised from the key itself), the keys kept published, the header
//! and the JWKS path.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_saphyr::Spanned;

use super::main_file::RESERVED_HEADERS;
use super::sessions::is_plain_path;
use super::values::{is_token_byte, positive_duration};
use crate::diag::Reporter;
use crate::file::{AssertionFile, Text};
use crate::model::{AssertionAlg, AssertionKey, AssertionSettings, Secret};

const DEFAULT_HEADER: &str = "x-portcullis-assertion";
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30);
const MAX_LIFETIME: Duration = Duration::from_secs(300);
const DEFAULT_JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";
/// DER of the algorithm identifiers in a PKCS#8 key.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

pub(super) fn assertion(
    file: Option<&Spanned<AssertionFile>>,
    base: &Path,
    r: &mut Reporter<'_>,
) -> Option<AssertionSettings> {
    let section = file?;
    let a = &section.value;
    let errors_before = super::count_errors(r);
    let issuer = match url::Url::parse(&a.issuer.value) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => a.issuer.value.clone(),
        _ => {
            r.error(&a.issuer, "issuer must be an http(s) URL naming this gateway (it is the assertions' iss)");
            String::new()
        }
    };
    let wanted = match a.alg.as_ref().map(|t| (t, t.value.as_str())) {
        None => None,
        Some((_, "ES256")) => Some(AssertionAlg::Es256),
        Some((_, "EdDSA")) => Some(AssertionAlg::EdDsa),
        Some((text, other)) => {
            r.error(text, format!("'{other}' is not one of: ES256, EdDSA"));
            None
        }
    };
    let key = read_key(&a.key_file, base, r);
    if let (Some(key), Some(wanted)) = (&key, wanted) {
        if key.alg != wanted {
            r.error(&a.key_file, format!("this is a key for {}, not {}", key.alg.name(), wanted.name()));
        }
    }
    let published: Vec<AssertionKey> =
        a.published_key_files.iter().flatten().filter_map(|text| read_key(text, base, r)).collect();
    let header = match &a.header {
        None => DEFAULT_HEADER.to_owned(),
        Some(text) if RESERVED_HEADERS.contains(&text.value.to_ascii_lowercase().as_str()) => {
            r.error(text, format!("'{}' belongs to HTTP or the proxy; pick another header", text.value));
            String::new()
        }
        Some(text) if !text.value.is_empty() && text.value.bytes().all(is_token_byte) => {
            text.value.to_ascii_lowercase()
        }
        Some(text) => {
            r.error(text, format!("'{}' is not a valid header name", text.value));
            String::new()
        }
    };
    let lifetime = a.lifetime.as_ref().and_then(|t| positive_duration(t, r)).unwrap_or(DEFAULT_LIFETIME);
    if lifetime > MAX_LIFETIME {
        if let Some(text) = &a.lifetime {
            r.error(text, "lifetime is at most 5m: an assertion is for one request, not a session");
        }
    }
    let jwks_path = a.jwks_path.as_ref().map_or(DEFAULT_JWKS_PATH, |t| t.value.as_str()).to_owned();
    if let Some(text) = &a.jwks_path {
        if !is_plain_path(&text.value) {
            r.error(text, "jwks_path must be a plain absolute path");
        }
    }
    if super::count_errors(r) > errors_before {
        return None;
    }
    Some(AssertionSettings { issuer, key: key?, published, header, lifetime, jwks_path })
}

/// A PKCS#8 PEM key of a kind the assertions can be signed with.
fn read_key(text: &Text, base: &Path, r: &mut Reporter<'_>) -> Option<AssertionKey> {
    let path = base.join(&text.value);
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) => {
            r.error(text, format!("cannot read key file {}: {e}", path.display()));
            return None;
        }
    };
    let der = pem
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END PRIVATE KEY-----").next())
        .map(|body| body.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .and_then(|body| STANDARD.decode(body).ok());
    let Some(der) = der else {
        r.error(
            text,
            format!(
                "{} holds no PKCS#8 private key (BEGIN PRIVATE KEY); convert with openssl pkcs8 -topk8 -nocrypt",
                path.display()
            ),
        );
        return None;
    };
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    let alg = if contains(ED25519_OID) {
        AssertionAlg::EdDsa
    } else if contains(EC_PUBLIC_KEY_OID) && contains(P256_OID) {
        AssertionAlg::Es256
    } else {
        r.error(text, format!("{} is neither an EC P-256 nor an Ed25519 key", path.display()));
        return None;
    };
    Some(AssertionKey { file: path, alg, pkcs8: Secret::new(der) })
}
