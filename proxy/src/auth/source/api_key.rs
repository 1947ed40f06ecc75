//! API keys: `Authorization: ApiKey <key>` or the operator's header
//! (`api_keys.header`), keys of the shape `pk_<id>_<secret>`.
//!
//! The key is looked up by the id it carries in clear, then its SHA-256
//! (the digest every credential gets, `auth::cache::digest`) is compared
//! in constant time with the one its key file holds. The key files hold no
//! key: a leaked file or backup lets nobody in, and since a key has at least
//! 128 bits from the OS's generator, a plain SHA-256 is enough (a slow,
//! salted hash only matters for guessable secrets such as passwords; GitHub
//! and Stripe store their tokens the same way). The id is no secret: that a
//! lookup by id takes the same time or not for unknown ids reveals nothing
//! an id does not already say.
//!
//! Never cached (see `Authenticator::authenticate`): the lookup costs what a
//! cache hit costs, and the key set is part of the running configuration,
//! so a key removed from its file or past `expires` is refused from the
//! request after the reload (or the second) on.

use std::collections::HashMap;

use config::{ApiKey, ApiKeys};
use http::header::AUTHORIZATION;
use http::HeaderName;
use pingora::http::RequestHeader;

use super::{CredentialSource, PresentationError, Verifier};
use crate::auth::cache::TokenDigest;
use crate::auth::{AuthError, Identity};
use crate::idp::unix_now;
use crate::labels::AuthPath;

/// The scheme of `Authorization: ApiKey <key>` (case-insensitive).
pub(crate) const SCHEME: &str = "ApiKey";
/// The prefix of every key: secret scanners and people can tell a key.
pub(crate) const PREFIX: &str = "pk_";
/// Longest value taken as a key (generated keys are about 120 bytes).
const MAX_KEY_BYTES: usize = 512;

/// Why an API key on a request cannot be used as it is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiKeyError {
    /// 400 invalid_request: which of them would be meant?
    #[error("more than one API key is sent")]
    Several,
    /// 401 invalid_key (like any key that does not authenticate).
    #[error("the API key is malformed")]
    Malformed,
}

/// The configured keys, by id.
pub(crate) struct ApiKeySource {
    header: Option<HeaderName>,
    keys: HashMap<Box<str>, ApiKey>,
}

impl ApiKeySource {
    pub(super) fn new(config: &ApiKeys) -> ApiKeySource {
        // The configuration validated the name; one that does not parse
        // would only mean keys are read from `Authorization` alone.
        let header = config.header.as_deref().and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok());
        let keys = config.keys.iter().map(|key| (key.id.as_str().into(), key.clone())).collect();
        ApiKeySource { header, keys }
    }

    /// The header keys come in besides `Authorization` (removed before the
    /// request goes upstream).
    pub(crate) fn header(&self) -> Option<&HeaderName> {
        self.header.as_ref()
    }
}

impl CredentialSource for ApiKeySource {
    fn find<'r>(&self, request: &'r RequestHeader) -> Result<Option<&'r str>, PresentationError> {
        let from_authorization = request.headers.get_all(AUTHORIZATION).iter().filter_map(|value| {
            let value = value.as_bytes().trim_ascii();
            let split = value.iter().position(|b| *b == b' ' || *b == b'\t').unwrap_or(value.len());
            let (scheme, rest) = value.split_at(split);
            scheme.eq_ignore_ascii_case(SCHEME.as_bytes()).then_some(rest)
        });
        let from_header =
            self.header.iter().flat_map(|name| request.headers.get_all(name).iter().map(|v| v.as_bytes()));
        let mut found = from_authorization.chain(from_header);
        let Some(value) = found.next() else { return Ok(None) };
        if found.next().is_some() {
            return Err(ApiKeyError::Several.into());
        }
        let value = value.trim_ascii();
        if value.is_empty() || value.len() > MAX_KEY_BYTES || !value.iter().all(u8::is_ascii_graphic) {
            return Err(ApiKeyError::Malformed.into());
        }
        // Visible ASCII, so UTF-8.
        std::str::from_utf8(value).map(Some).map_err(|_| ApiKeyError::Malformed.into())
    }

    async fn authenticate(&self, verifier: &Verifier, key: &str, digest: &TokenDigest) -> Result<Identity, AuthError> {
        let id = parse(key).ok_or(AuthError::InvalidApiKey("the API key is malformed"))?;
        let entry = self.keys.get(id).ok_or(AuthError::InvalidApiKey(NOT_VALID))?;
        if !hash_matches(digest, &entry.sha256) {
            return Err(AuthError::InvalidApiKey(NOT_VALID));
        }
        // Said only to whoever holds the key: the secret matched.
        if entry.expires.is_some_and(|expires| expires <= unix_now()) {
            return Err(AuthError::InvalidApiKey("the API key has expired"));
        }
        Ok(verifier.identities.make_for_key(entry))
    }

    fn path(&self) -> AuthPath {
        AuthPath::ApiKey
    }
}

/// One answer for an unknown id and a wrong secret.
const NOT_VALID: &str = "the API key is not valid";

/// The id of a key shaped `pk_<id>_<secret>`.
fn parse(key: &str) -> Option<&str> {
    let (id, secret) = key.strip_prefix(PREFIX)?.split_once('_')?;
    let secret_ok = !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (config::is_key_id(id) && secret_ok).then_some(id)
}

/// Whether the presented key's SHA-256 is the stored one, in time that
/// does not depend on where they differ.
pub(crate) fn hash_matches(presented: &TokenDigest, stored: &[u8; 32]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(presented, stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cache::digest;

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        let stored = digest("pk_ci_secret");
        assert!(hash_matches(&digest("pk_ci_secret"), &stored));
        assert!(!hash_matches(&digest("pk_ci_secreT"), &stored));
        let mut last_byte = stored;
        last_byte[31] ^= 1;
        assert!(!hash_matches(&last_byte, &stored));
        assert!(!hash_matches(&[0; 32], &stored));
    }

    #[test]
    fn keys_carry_their_id() {
        assert_eq!(parse("pk_ci-1_abc_DEF-9"), Some("ci-1"));
        assert_eq!(parse("pk__abc"), None);
        assert_eq!(parse("pk_ci_"), None);
        assert_eq!(parse("sk_ci_abc"), None);
        assert_eq!(parse("pk_ci_ab+c"), None);
        assert_eq!(parse("pk_ci"), None);
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        crate::test_support::request_with("GET", headers)
    }

    #[test]
    fn finds_the_key_in_one_place_only() {
        let keys = ApiKeys { header: Some("x-api-key".to_owned()), issuers: Vec::new(), keys: Vec::new() };
        let source = ApiKeySource::new(&keys);
        let find = |headers: &[(&str, &str)]| source.find(&request(headers)).map(|k| k.map(str::to_owned));
        assert_eq!(find(&[("authorization", "ApiKey pk_a_b")]), Ok(Some("pk_a_b".to_owned())));
        assert_eq!(find(&[("authorization", "apikey  pk_a_b ")]), Ok(Some("pk_a_b".to_owned())));
        assert_eq!(find(&[("x-api-key", "pk_a_b")]), Ok(Some("pk_a_b".to_owned())));
        assert_eq!(find(&[("authorization", "Bearer pk_a_b")]), Ok(None));
        assert_eq!(find(&[]), Ok(None));
        let several = Err(PresentationError::ApiKey(ApiKeyError::Several));
        assert_eq!(find(&[("authorization", "ApiKey pk_a_b"), ("x-api-key", "pk_a_b")]), several);
        assert_eq!(find(&[("x-api-key", "pk_a_b"), ("x-api-key", "pk_a_c")]), several);
        let malformed = Err(PresentationError::ApiKey(ApiKeyError::Malformed));
        assert_eq!(find(&[("x-api-key", "")]), malformed);
        assert_eq!(find(&[("x-api-key", "pk_a b")]), malformed);
        assert_eq!(find(&[("authorization", "ApiKey")]), malformed);
    }
}
