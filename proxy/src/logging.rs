//! Structured logs through `tracing`: human or JSON, level from the
//! configuration and changeable on reload. Pingora's own `log` output is
//! bridged in. Nothing logs a token, an `Authorization` value, a cookie or a
//! secret: the access line is built from chosen fields only (see
//! `gateway::access_log`), and secrets are a type whose `Debug` is redacted.

use std::io::IsTerminal;
use std::sync::OnceLock;

use config::{LogFormat, LogSettings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

type FilterHandle = reload::Handle<EnvFilter, Registry>;

static FILTER: OnceLock<FilterHandle> = OnceLock::new();

fn filter(level: &str) -> EnvFilter {
    // The level applies to portcullis itself (the other workspace crates
    // are pure and do not log). Dependencies never go below info: Pingora prints whole request headers (Authorization,
    // cookies) at debug, and the HTTP client would print the introspection
    // call's Basic credentials at trace.
    let dependencies = match level {
        "debug" | "trace" => "info",
        "info" => "warn",
        other => other,
    };
    EnvFilter::new(format!("{dependencies},portcullis={level}"))
}

/// Install the global subscriber. Called once, at start.
pub fn init(settings: &LogSettings) {
    let (filter_layer, handle) = reload::Layer::new(filter(&settings.level));
    let fmt = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stdout)
            .boxed(),
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .boxed(),
    };
    if tracing_subscriber::registry().with(filter_layer).with(fmt).try_init().is_ok() {
        let _ = FILTER.set(handle);
        let _ = tracing_log::LogTracer::init();
    }
}

/// Apply a new level after a reload. The format needs a restart.
pub(crate) fn set_level(level: &str) {
    if let Some(handle) = FILTER.get() {
        if let Err(error) = handle.reload(filter(level)) {
            tracing::warn!(%error, "could not change the log level");
        }
    }
}
