//! portcullis: an identity-aware reverse proxy on Pingora.
//!
//! The binary's library: credential authentication ([`auth`]), IdP clients
//! (`idp`), the compiled runtime policy (`runtime`), the Pingora glue split
//! by phase (`gateway`), rate limits, metrics, the admin listener, hot
//! reload, and the commands behind the CLI. Pure decisions live in the
//! `policy` crate and the YAML model in `config`; this crate does the I/O.
//!
//! Everything is private to the crate except what the binary, the
//! benchmarks and the memory example use, so the compiler reports dead code.
#![forbid(unsafe_code)]

mod admin;
mod assertion;
mod auth;
mod commands;
mod demo;
mod gateway;
mod idp;
mod keys;
mod labels;
mod logging;
mod metrics;
mod ratelimit;
mod reload;
mod revoke;
mod runtime;
mod server;
mod session;
mod store;
mod stripes;
#[cfg(test)]
mod test_support;
mod tls;

// What the binary runs.
pub use commands::{check, explain, Question};
pub use demo::run as run_demo;
pub use keys::{new_key, KeyRequest};
pub use logging::init as init_logging;
pub use revoke::{revoke_command, CliRevocation};
pub use server::{serve, Launch};

// What the benchmark and the memory example measure.
pub use auth::{
    digest, AuthSettings, Authenticator, CertificateBinding, Identity, IssuerState, Revocations, TokenCache,
};
pub use idp::{unix_now, IdpClient};
pub use metrics::Metrics;
pub use ratelimit::{KeyValue, LimitCounters, Limiter};
pub use stripes::{Held, InFlight, InFlightCount, StripedSwap};
