//! Talking to identity providers: OIDC discovery, JWKS fetching and refresh.
//!
//! All IdP I/O runs on one small runtime of its own ([`IdpClient`]), never on
//! Pingora's request threads: a request that needs a refresh only waits for a
//! notification, bounded by the issuer's timeout. Every call has a timeout and
//! a response-size limit; a failed refresh keeps the keys already held. What
//! the IdP answers is parsed by `credentials` (`discovery`, `keys`,
//! `cache_control`): no I/O there, and fuzzed.

mod client;
mod key_store;

use std::time::{SystemTime, UNIX_EPOCH};

pub use client::IdpClient;
pub(crate) use client::{form_urlencode, FetchError};
pub(crate) use key_store::KeyStore;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
