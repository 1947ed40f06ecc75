//! portcullis: an identity-aware reverse proxy on Pingora.
//!
//! The binary's library: token authentication ([`auth`]), IdP clients
//! ([`idp`]), the compiled runtime policy ([`runtime`]), the Pingora glue split
//! by phase ([`gateway`]), rate limits, metrics, the admin listener, hot
//! reload, and the commands behind the CLI. Pure decisions live in the
//! `policy` crate and the YAML model in `config`; this crate does the I/O.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod commands;
pub mod demo;
pub mod gateway;
pub mod idp;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod reload;
pub mod runtime;
pub mod server;
