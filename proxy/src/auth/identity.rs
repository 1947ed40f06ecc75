//! What a verified credential stands for, computed once per credential and
//! shared by every request that presents it.

use config::{HeaderValueSource, IdentityHeader};
use credentials::claims;
use http::HeaderValue;
use policy::{IssuerId, ScopeSet};
use serde_json::{Map, Value};

use super::issuer::IssuerState;

/// A verified identity: what the policy and the identity headers need.
#[derive(Debug)]
pub struct Identity {
    pub issuer: IssuerId,
    /// The [`IssuerState`] that verified it; a cached identity is only used
    /// while that same state (same issuer configuration) is in force.
    pub issuer_uid: u64,
    /// Fingerprint of the verifying key; `None` for HMAC and introspection.
    pub key_id: Option<u64>,
    pub subject: Option<Box<str>>,
    pub scopes: ScopeSet,
    /// Identity-header values by index into the runtime's header list.
    pub headers: Box<[(u16, HeaderValue)]>,
    /// Unix time after which this identity must be re-established.
    pub valid_until: u64,
}

/// Turns verified claims into an [`Identity`] under one configuration's
/// identity headers.
pub(crate) struct IdentityMaker {
    headers: Vec<IdentityHeader>,
}

/// Where verified claims came from.
pub(super) struct Verified<'c> {
    pub(super) issuer: IssuerId,
    pub(super) key_id: Option<u64>,
    pub(super) claims: &'c Map<String, Value>,
    pub(super) valid_until: u64,
}

impl IdentityMaker {
    pub(crate) fn new(headers: Vec<IdentityHeader>) -> IdentityMaker {
        IdentityMaker { headers }
    }

    pub(super) fn make(&self, state: &IssuerState, verified: Verified<'_>) -> Identity {
        let claims = verified.claims;
        let scopes = claims::scopes(claims, &state.config().scope_claims);
        let headers = self
            .headers
            .iter()
            .enumerate()
            .filter_map(|(index, header)| {
                let value = match &header.source {
                    HeaderValueSource::Scopes => {
                        claims::safe_header_value(&scopes.iter().collect::<Vec<_>>().join(" "))
                    }
                    HeaderValueSource::Claim(path) => claims::lookup(claims, path).and_then(claims::header_value),
                }?;
                Some((u16::try_from(index).ok()?, value))
            })
            .collect();
        let subject = claims.get("sub").and_then(Value::as_str).map(Into::into);
        Identity {
            issuer: verified.issuer,
            issuer_uid: state.uid,
            key_id: verified.key_id,
            subject,
            scopes,
            headers,
            valid_until: verified.valid_until,
        }
    }
}
