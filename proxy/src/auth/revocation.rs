//! Token revocation: the denylist every request is checked against, held in
//! memory (the request path never asks Redis), and the entries' wire form.
//!
//! An entry revokes one token (by `jti`, or by the SHA-256 of the whole
//! token), or every token of a subject issued before a time. Each entry
//! carries the time after which every token it covers has expired; the set
//! drops it then, so it stays bounded by the revocations of one token
//! lifetime.
//!
//! The wire form is the Redis contract an application's own logout handler
//! may write (README "Running several replicas"): a sorted set whose
//! members are JSON objects and whose scores are the entries' expiry (Unix
//! seconds), and a message on a channel to tell the replicas.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::cache::TokenDigest;
use super::{Identity, API_KEY_ISS};

/// One revocation, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The token's `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Lower-case hex SHA-256 of the whole token (tokens without `jti`,
    /// opaque tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Every token of this subject…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// …issued before this Unix time (`iat`); a token without `iat` counts
    /// as issued before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Only tokens of this issuer (the `iss` value; `api_key` for API
    /// keys); absent: any issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// Why an entry is not a revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("not a revocation entry: {0}")]
    Malformed(String),
    #[error("a revocation names exactly one of jti, token_sha256 or sub")]
    Ambiguous,
    #[error("token_sha256 must be 64 lower-case hex digits")]
    Digest,
}

impl Revocation {
    /// Parse and check an entry's JSON.
    pub fn parse(text: &str) -> Result<Revocation, RevocationError> {
        let entry: Revocation = serde_json::from_str(text).map_err(|e| RevocationError::Malformed(e.to_string()))?;
        let named = [entry.jti.is_some(), entry.token_sha256.is_some(), entry.sub.is_some()];
        if named.iter().filter(|n| **n).count() != 1 || (entry.before.is_some() && entry.sub.is_none()) {
            return Err(RevocationError::Ambiguous);
        }
        if let Some(digest) = &entry.token_sha256 {
            if parse_digest(digest).is_none() {
                return Err(RevocationError::Digest);
            }
        }
        Ok(entry)
    }

    /// The JSON stored as the sorted set's member (field order fixed, so
    /// the same revocation written twice is one member).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn parse_digest(hex: &str) -> Option<TokenDigest> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of a token digest.
pub(crate) fn digest_hex(digest: &TokenDigest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A subject revocation: the issuer it is limited to (`None`: any) and the
/// time before which its tokens were issued.
type SubjectEntry = (Option<Box<str>>, u64);

/// The entries in force, indexed for lookups that allocate nothing.
#[derive(Debug, Default)]
pub struct Denylist {
    tokens: HashSet<TokenDigest>,
    /// `jti` → the issuers it is revoked for (`None`: any).
    jtis: HashMap<Box<str>, Vec<Option<Box<str>>>>,
    /// `sub` → (issuer, issued-before) pairs.
    subjects: HashMap<Box<str>, Vec<SubjectEntry>>,
    len: usize,
}

impl Denylist {
    /// Index `entries` (with their expiry); those expired at `now` are left out.
    pub fn new<'e>(entries: impl IntoIterator<Item = (&'e Revocation, u64)>, now: u64) -> Denylist {
        let mut list = Denylist::default();
        for (entry, expires) in entries {
            if expires <= now {
                continue;
            }
            let issuer = entry.iss.as_deref().map(Box::from);
            if let Some(digest) = entry.token_sha256.as_deref().and_then(parse_digest) {
                list.tokens.insert(digest);
            } else if let Some(jti) = &entry.jti {
                list.jtis.entry(jti.as_str().into()).or_default().push(issuer);
            } else if let Some(sub) = &entry.sub {
                list.subjects.entry(sub.as_str().into()).or_default().push((issuer, entry.before.unwrap_or(u64::MAX)));
            } else {
                continue;
            }
            list.len += 1;
        }
        list
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the credential with `digest`, verified as `identity` from
    /// issuer `iss`, is revoked.
    pub fn revokes(&self, identity: &Identity, iss: &str, digest: &TokenDigest) -> bool {
        // An API key is covered only by entries that name `api_key`: those
        // never expire (a key lives as long as its file says), while an
        // entry for any issuer expires with the tokens it covers.
        let key = iss == API_KEY_ISS;
        let issuer_matches = |entry: &Option<Box<str>>| match entry.as_deref() {
            None => !key,
            Some(wanted) => wanted == iss,
        };
        if self.tokens.contains(digest) {
            return true;
        }
        if let Some(issuers) = identity.jti.as_deref().and_then(|jti| self.jtis.get(jti)) {
            if issuers.iter().any(issuer_matches) {
                return true;
            }
        }
        // No `iat`: the token cannot prove it was issued after.
        self.revokes_subject(identity.subject.as_deref(), iss, identity.issued_at.unwrap_or(0))
    }

    /// Whether `subject` of `iss` is revoked for credentials issued at
    /// `issued_at` (a token's `iat`, a session's sign-in). Issued in the
    /// second of the revocation counts as before it: `iat` has whole
    /// seconds, and a stolen refresh token used at once must not slip
    /// through.
    pub fn revokes_subject(&self, subject: Option<&str>, iss: &str, issued_at: u64) -> bool {
        let key = iss == API_KEY_ISS;
        let Some(entries) = subject.and_then(|sub| self.subjects.get(sub)) else { return false };
        entries.iter().any(|(issuer, before)| {
            let issuer_matches = match issuer.as_deref() {
                None => !key,
                Some(wanted) => wanted == iss,
            };
            issuer_matches && issued_at <= *before
        })
    }
}

/// The denylist in force, swapped whole when entries change.
#[derive(Default)]
pub struct Revocations {
    current: ArcSwap<Denylist>,
}

impl Revocations {
    pub fn new() -> Arc<Revocations> {
        Arc::new(Revocations::default())
    }

    /// The denylist now (one atomic load).
    pub fn load(&self) -> arc_swap::Guard<Arc<Denylist>> {
        self.current.load()
    }

    pub fn replace(&self, list: Denylist) {
        self.current.store(Arc::new(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::{ClaimValues, IssuerId, ScopeSet};

    fn identity(sub: &str, jti: Option<&str>, iat: Option<u64>) -> Identity {
        Identity {
            issuer: IssuerId(0),
            issuer_uid: 0,
            key_id: None,
            subject: Some(sub.into()),
            jti: jti.map(Into::into),
            issued_at: iat,
            scopes: ScopeSet::default(),
            headers: Box::new([]),
            valid_until: u64::MAX,
            claims: ClaimValues(Vec::new()),
            binding: crate::auth::CertificateBinding::Unbound,
        }
    }

    fn entry(json: &str) -> Revocation {
        Revocation::parse(json).unwrap()
    }

    #[test]
    fn entries_parse_strictly_and_serialise_in_one_form() {
        let jti = entry(r#"{"iss":"https://sso","jti":"abc"}"#);
        assert_eq!(jti.to_json(), r#"{"jti":"abc","iss":"https://sso"}"#);
        assert_eq!(Revocation::parse(r#"{"jti":"a","sub":"b"}"#), Err(RevocationError::Ambiguous));
        assert_eq!(Revocation::parse(r#"{"jti":"a","before":1}"#), Err(RevocationError::Ambiguous));
        assert_eq!(Revocation::parse(r#"{"iss":"x"}"#), Err(RevocationError::Ambiguous));
        assert_eq!(Revocation::parse(r#"{"token_sha256":"AB"}"#), Err(RevocationError::Digest));
        assert!(matches!(Revocation::parse(r#"{"jti":"a","colour":1}"#), Err(RevocationError::Malformed(_))));
        assert!(matches!(Revocation::parse("not json"), Err(RevocationError::Malformed(_))));
    }

    #[test]
    fn a_jti_a_digest_or_a_subject_revokes_what_it_names_and_nothing_else() {
        let digest = [7u8; 32];
        let entries = [
            (entry(r#"{"jti":"j1","iss":"https://sso"}"#), 2000),
            (entry(r#"{"jti":"j2"}"#), 2000),
            (entry(&format!(r#"{{"token_sha256":"{}"}}"#, digest_hex(&digest))), 2000),
            (entry(r#"{"sub":"mallory","before":1500}"#), 9000),
            (entry(r#"{"jti":"old"}"#), 900),
        ];
        let list = Denylist::new(entries.iter().map(|(e, t)| (e, *t)), 1000);
        assert_eq!(list.len(), 4, "the expired entry is left out");
        let other = [0u8; 32];
        assert!(list.revokes(&identity("a", Some("j1"), Some(1)), "https://sso", &other));
        assert!(!list.revokes(&identity("a", Some("j1"), Some(1)), "https://other", &other));
        assert!(list.revokes(&identity("a", Some("j2"), Some(1)), "https://other", &other));
        assert!(list.revokes(&identity("a", None, None), "x", &digest));
        assert!(!list.revokes(&identity("a", Some("old"), None), "x", &other));
        // Subject: older tokens and tokens without iat, not newer ones.
        assert!(list.revokes(&identity("mallory", None, Some(1499)), "x", &other));
        assert!(list.revokes(&identity("mallory", None, Some(1500)), "x", &other), "the same second");
        assert!(list.revokes(&identity("mallory", None, None), "x", &other));
        assert!(!list.revokes(&identity("mallory", None, Some(1501)), "x", &other));
        // API keys: only entries that name api_key cover them.
        assert!(!list.revokes(&identity("mallory", Some("j2"), None), API_KEY_ISS, &other));
        let keys = [
            (entry(r#"{"jti":"k1","iss":"api_key"}"#), u64::MAX),
            (entry(r#"{"sub":"bot","iss":"api_key"}"#), u64::MAX),
        ];
        let list = Denylist::new(keys.iter().map(|(e, t)| (e, *t)), 1000);
        assert!(list.revokes(&identity("x", Some("k1"), None), API_KEY_ISS, &other));
        assert!(list.revokes(&identity("bot", Some("k2"), None), API_KEY_ISS, &other));
        assert!(!list.revokes(&identity("bot", Some("k2"), Some(1)), "https://sso", &other));
        assert!(!list.revokes(&identity("alice", None, Some(1)), "x", &other));
    }
}
