//! Recently refused JWTs, by digest: one forged or expired token replayed
//! many times costs one verification, not one each.
//!
//! Bounded by entry count (quick_cache), each entry kept [`REFUSED_TTL`].
//! Only refusals that cannot turn into acceptance meanwhile are kept: a bad
//! signature, a wrong audience or issuer, an expired or malformed token —
//! not "not valid yet" (`nbf` arrives), and none that a key rotation can
//! change (an unknown key, no key id among several keys, no key for the
//! algorithm). A reload starts an empty set, so a configuration change
//! (a new audience, say) is never answered from an old refusal.

use std::time::Duration;

use super::cache::TokenDigest;
use super::AuthError;
use crate::idp::unix_now;

/// How long a refusal is remembered.
pub(crate) const REFUSED_TTL: Duration = Duration::from_secs(60);
/// Refusals remembered at most (distinct forged tokens beyond this evict
/// older ones; each costs a verification, as without the set).
pub(crate) const REFUSED_CAPACITY: usize = 16_384;

use super::source::bearer_jwt::PASSING;

pub(crate) struct RefusedTokens {
    entries: quick_cache::sync::Cache<TokenDigest, (AuthError, u64)>,
}

impl RefusedTokens {
    pub(crate) fn new() -> RefusedTokens {
        RefusedTokens { entries: super::cache::sharded(REFUSED_CAPACITY) }
    }

    /// The refusal remembered for this digest, if it is still fresh.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<AuthError> {
        let (error, until) = self.entries.get(digest)?;
        if until > unix_now() {
            return Some(error);
        }
        self.entries.remove(digest);
        None
    }

    /// Remember a refusal of a verified JWT, when it is a lasting one.
    pub(crate) fn remember(&self, digest: TokenDigest, error: AuthError) {
        let lasting = match error {
            AuthError::InvalidToken(why) => !is_passing(why),
            AuthError::InvalidApiKey(_)
            | AuthError::IssuerUnavailable { .. }
            | AuthError::OverFailedAuthBudget { .. } => false,
        };
        if lasting {
            self.entries.insert(digest, (error, unix_now() + REFUSED_TTL.as_secs()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A refusal a key rotation or the clock may change.
pub(crate) fn is_passing(why: &str) -> bool {
    PASSING.contains(&why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lasting_refusals_are_remembered_and_passing_ones_are_not() {
        let refused = RefusedTokens::new();
        refused.remember([1; 32], AuthError::InvalidToken("the token's signature is invalid"));
        refused.remember([2; 32], AuthError::InvalidToken(super::super::source::bearer_jwt::NOT_YET_VALID));
        refused.remember([3; 32], AuthError::InvalidToken(super::super::source::bearer_jwt::UNKNOWN_KEY));
        refused.remember([4; 32], AuthError::IssuerUnavailable { retry_after: 1 });
        assert_eq!(refused.get(&[1; 32]), Some(AuthError::InvalidToken("the token's signature is invalid")));
        assert_eq!((refused.get(&[2; 32]), refused.get(&[3; 32]), refused.get(&[4; 32])), (None, None, None));
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let refused = RefusedTokens::new();
        for n in 0..(REFUSED_CAPACITY as u32 * 3) {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            refused.remember(digest, AuthError::InvalidToken("the token's signature is invalid"));
        }
        assert!(refused.len() <= REFUSED_CAPACITY, "{}", refused.len());
    }
}
