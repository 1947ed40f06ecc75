//! What clients and identity providers hand portcullis, parsed and judged
//! without I/O: the bearer token on a request, the unverified JWT header and
//! `iss` used to pick an issuer, the JWS signature and registered claims,
//! JWKS documents (parsed into keys ready to verify), OpenID discovery documents,
//! the `max-age` of an IdP's `Cache-Control`, claims, RFC 7662 introspection
//! answers and login-form fields.
//!
//! These are the parsers an attacker reaches first, so they live apart from
//! the server: plain functions over bytes and JSON, unit-tested here and
//! fuzzed (`fuzz/`) without building Pingora. The `proxy` crate's `auth` and
//! `idp` modules wire them to caches, key refresh and the network.
#![forbid(unsafe_code)]

pub mod bearer;
pub mod cache_control;
pub mod claims;
pub mod discovery;
pub mod form;
pub mod introspection;
pub mod jws;
pub mod keys;
pub mod peek;
