//! Pure access-decision logic for portcullis.
//!
//! No I/O, no async, no Pingora: the proxy normalises a request path with
//! [`normalize`], finds the route with [`RouteTable::find`], verifies the token
//! itself, then asks [`decide`]. Everything here is plain data and plain
//! functions, so it is unit- and property-tested without a server.
#![forbid(unsafe_code)]

mod claims;
mod client_cert;
pub mod cors;
mod decide;
mod host;
mod lookalike;
mod path;
mod pattern;
mod route;
mod table;

pub use claims::{decode_segment, ClaimCondition, ClaimId, ClaimValue, ClaimValues, Condition, Literal};
pub use client_cert::{
    escape_dn_value, parse_fingerprint, CertificateRule, CertificateVerdict, ClientCertificate, DistinguishedName,
    DnError, UriPattern,
};
pub use decide::{decide, is_scope_token, Decision, Principal, ScopeSet};
pub use host::{normalize_host, HostError};
pub use path::{hex_value, is_canonical_literal, normalize, NormalizedPath, PathError, Segments, MAX_PATH_BYTES};
pub use pattern::{PathPattern, PatternError, Segment};
pub use route::{Access, HostPattern, HostSet, IssuerId, Method, MethodSet, Requirement, Route, RouteSpec};
pub use table::{RouteTable, Shadowed};
