//! `portcullis keys new`: a new API key, printed once, and the key file
//! entry that lets it in (the entry holds the key's SHA-256, never the key).

use std::fmt::Write as _;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::auth::digest;
use crate::auth::source::api_key::PREFIX;

/// Bytes of randomness in a key's secret (256 bits; at least 128 are needed
/// for a plain SHA-256 to be as good as a slow hash).
const SECRET_BYTES: usize = 32;
/// Bytes of randomness in a generated id.
const ID_BYTES: usize = 6;

/// What `keys new` is asked for.
pub struct KeyRequest<'a> {
    pub subject: &'a str,
    pub scopes: &'a [String],
    /// The entry's id; a random one when `None`.
    pub id: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub note: Option<&'a str>,
    /// One of `api_keys.issuers`.
    pub issuer: Option<&'a str>,
}

/// A new key on the first line, then the entry to paste under `keys:` in a
/// key file. `Err` says what is wrong with the request.
pub fn new_key(request: &KeyRequest<'_>) -> Result<String, String> {
    let printable = |text: &str| !text.trim().is_empty() && text.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable(request.subject) {
        return Err("--subject must be printable ASCII and not empty".to_owned());
    }
    if let Some(scope) = request.scopes.iter().find(|s| !policy::is_scope_token(s)) {
        return Err(format!("--scope '{scope}' is not a valid scope (no spaces, quotes or backslashes)"));
    }
    if let Some(expires) = request.expires {
        if config::parse_time(expires).is_none() {
            return Err(format!("--expires '{expires}' is not a UTC time like 2027-01-31T00:00:00Z or 2027-01-31"));
        }
    }
    if request.note.is_some_and(|note| !note.bytes().all(|b| (0x20..0x7f).contains(&b))) {
        return Err("--note must be printable ASCII".to_owned());
    }
    if request.issuer.is_some_and(|issuer| !config::is_name(issuer)) {
        return Err("--issuer must be letters, digits, '-' or '_' (one of api_keys.issuers)".to_owned());
    }
    let random = SystemRandom::new();
    let fill = |bytes: &mut [u8]| random.fill(bytes).map_err(|_| "the system's random generator failed".to_owned());
    let id = match request.id {
        Some(id) if config::is_key_id(id) => id.to_owned(),
        Some(id) => return Err(format!("--id '{id}' must be 1 to 64 ASCII letters, digits or '-'")),
        None => {
            let mut bytes = [0u8; ID_BYTES];
            fill(&mut bytes)?;
            hex(&bytes)
        }
    };
    let mut secret = [0u8; SECRET_BYTES];
    fill(&mut secret)?;
    let key = format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let sha256 = hex(&digest(&key));
    // JSON strings are YAML double-quoted scalars: no quoting surprises.
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let scopes: Vec<String> = request.scopes.iter().map(|s| quote(s)).collect();
    let mut out = format!("{key}\n");
    out.push_str("# The key above is shown once and stored nowhere. Under `keys:` in a key file:\n");
    let _ = writeln!(out, "  - id: {id}");
    let _ = writeln!(out, "    sha256: {sha256}");
    let _ = writeln!(out, "    subject: {}", quote(request.subject));
    let _ = writeln!(out, "    scopes: [{}]", scopes.join(", "));
    if let Some(expires) = request.expires {
        let _ = writeln!(out, "    expires: {}", quote(expires));
    }
    if let Some(issuer) = request.issuer {
        let _ = writeln!(out, "    issuer: {}", quote(issuer));
    }
    if let Some(note) = request.note {
        let _ = writeln!(out, "    note: {}", quote(note));
    }
    Ok(out)
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(scopes: &'a [String]) -> KeyRequest<'a> {
        KeyRequest { subject: "ci", scopes, id: None, expires: None, note: None, issuer: None }
    }

    #[test]
    fn a_new_key_and_its_entry() {
        let scopes = vec!["deploy:write".to_owned()];
        let out = new_key(&request(&scopes)).unwrap();
        let key = out.lines().next().unwrap();
        let (id, secret) = key.strip_prefix("pk_").unwrap().split_once('_').unwrap();
        assert_eq!(id.len(), 2 * ID_BYTES);
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).unwrap().len(), SECRET_BYTES);
        assert!(out.contains(&format!("  - id: {id}\n")));
        assert!(out.contains("    scopes: [\"deploy:write\"]\n"));
        assert!(out.contains(&format!("    sha256: {}\n", hex(&digest(key)))));
        assert_eq!(out.matches(secret).count(), 1, "the secret is printed once");
        let again = new_key(&request(&scopes)).unwrap();
        assert_ne!(again.lines().next(), Some(key));
    }

    #[test]
    fn bad_requests_are_refused() {
        let bad_scope = vec!["a b".to_owned()];
        assert!(new_key(&request(&bad_scope)).is_err());
        assert!(new_key(&KeyRequest { id: Some("a_b"), ..request(&[]) }).is_err());
        assert!(new_key(&KeyRequest { expires: Some("tomorrow"), ..request(&[]) }).is_err());
        assert!(new_key(&KeyRequest { subject: " ", ..request(&[]) }).is_err());
    }
}
