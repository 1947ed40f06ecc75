//! The portcullis configuration: YAML in, a validated runtime model out.
//!
//! [`load`] reads the main file and every policy and key file it names, checks them
//! completely, and returns either a [`Config`] (with warnings) or every
//! problem found, each as `FILE:LINE:COL: message`. The file formats live in
//! `file`, the runtime model in [`model`]; they are separate so that the YAML
//! can evolve without touching the proxy, and the proxy never sees YAML.
//!
//! YAML is parsed by `serde-saphyr` in strict mode: it is maintained (unlike
//! `serde_yaml`), pure Rust, reports a position for every error including
//! duplicate keys, and bounds alias expansion. Strict booleans stop `yes`/`no`
//! from turning into booleans behind an operator's back.
#![forbid(unsafe_code)]

mod diag;
mod duration;
mod file;
pub mod model;
mod validate;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use diag::{Diagnostic, Position, Severity};
pub use duration::parse_duration;
pub use model::*;
pub use validate::{is_key_id, is_name, is_plain_path, parse_time, EnvLookup, SESSION_KEY_BYTES};

use diag::Reporter;
use file::{ConfigFile, KeyFile, PolicyFile};
use validate::{MainFile, Validator};

/// Largest configuration or policy file accepted.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// What the configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serving: every secret must be present.
    Serve,
    /// `portcullis check`: unset secret variables are warnings (CI machines
    /// that validate configs rarely hold production secrets).
    Check,
}

/// A valid configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// The configuration is not valid. Holds every error and warning found.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Load and validate a configuration file and its policy files, reading
/// secrets from the process environment.
pub fn load(path: &Path, mode: Mode) -> Result<Loaded, LoadError> {
    load_with_env(path, mode, &|name| std::env::var(name).ok())
}

/// [`load`] with an explicit secret source.
pub fn load_with_env(path: &Path, mode: Mode, env: EnvLookup<'_>) -> Result<Loaded, LoadError> {
    let mut diagnostics = Vec::new();
    let text = read_file(path, &mut diagnostics);
    let result = text.and_then(|text| load_text(path, &text, mode, env, &mut diagnostics));
    finish(result, diagnostics)
}

/// Validate configuration text that did not come from a file (the embedded
/// demo). `path` labels diagnostics and anchors relative policy globs.
pub fn load_str(path: &Path, text: &str, mode: Mode, env: EnvLookup<'_>) -> Result<Loaded, LoadError> {
    let mut diagnostics = Vec::new();
    let result = load_text(path, text, mode, env, &mut diagnostics);
    finish(result, diagnostics)
}

fn finish(config: Option<Config>, diagnostics: Vec<Diagnostic>) -> Result<Loaded, LoadError> {
    let failed = diagnostics.iter().any(|d| d.severity == Severity::Error);
    match config {
        Some(config) if !failed => Ok(Loaded { config, warnings: diagnostics }),
        _ => Err(LoadError { diagnostics }),
    }
}

fn load_text(path: &Path, text: &str, mode: Mode, env: EnvLookup<'_>, out: &mut Vec<Diagnostic>) -> Option<Config> {
    let file: ConfigFile = parse_yaml(path, text, out)?;
    let validator = Validator { mode, env };
    let main = validator.main_file(file, &mut Reporter { file: path, out });
    let MainFile { mut config, issuers, routes, policy_globs, key_globs, names } = main;
    validate::add_routes(&mut config, &names, routes, &mut Reporter { file: path, out });

    let base = path.parent().unwrap_or(Path::new("."));
    for glob_text in &policy_globs {
        for file_path in expand(path, base, glob_text, ("policy_files", "policy file"), &mut config, out) {
            let Some(text) = read_file(&file_path, out) else { continue };
            let Some(policy) = parse_yaml::<PolicyFile>(&file_path, &text, out) else { continue };
            let routes = policy.routes.unwrap_or_default();
            validate::add_routes(&mut config, &names, routes, &mut Reporter { file: &file_path, out });
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut keys = Vec::new();
    let key_issuers = config.api_keys.as_ref().map(|k| k.issuers.clone()).unwrap_or_default();
    for glob_text in &key_globs {
        for file_path in expand(path, base, glob_text, ("api_keys.files", "key file"), &mut config, out) {
            // An unreadable key file is a warning: its keys are left out
            // (fail closed) and every other key keeps working.
            let mut unreadable = Vec::new();
            let Some(text) = read_file(&file_path, &mut unreadable) else {
                out.extend(unreadable.into_iter().map(|d| Diagnostic { severity: Severity::Warning, ..d }));
                continue;
            };
            let Some(file) = parse_yaml::<KeyFile>(&file_path, &text, out) else { continue };
            validate::add_key_file(&mut keys, &key_issuers, file, now, &mut Reporter { file: &file_path, out });
        }
    }
    if let Some(api_keys) = &mut config.api_keys {
        api_keys.keys = keys;
    }
    validate::finish(&mut config, issuers, out);
    Some(config)
}

/// The files a `policy_files` or `api_keys.files` entry names, sorted, that
/// are not already sources; each becomes a source and the glob is watched.
fn expand(
    main: &Path,
    base: &Path,
    glob_text: &file::Text,
    (section, noun): (&str, &str),
    config: &mut Config,
    out: &mut Vec<Diagnostic>,
) -> Vec<PathBuf> {
    let pattern = base.join(&glob_text.value).to_string_lossy().into_owned();
    let mut reporter = Reporter { file: main, out };
    let mut files: Vec<PathBuf> = match glob::glob(&pattern) {
        Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
        Err(e) => {
            reporter.error(glob_text, format!("invalid {section} pattern: {e}"));
            return Vec::new();
        }
    };
    files.sort();
    if files.is_empty() {
        if glob_text.value.contains(['*', '?', '[']) {
            reporter.warn(glob_text, format!("{section} pattern '{}' matches no file yet", glob_text.value));
        } else {
            reporter.error(glob_text, format!("{noun} '{}' does not exist", glob_text.value));
        }
    }
    config.policy_globs.push(pattern);
    files.retain(|file| !config.sources.contains(file));
    config.sources.extend(files.iter().cloned());
    files
}

fn read_file(path: &Path, out: &mut Vec<Diagnostic>) -> Option<String> {
    let fail = |message: String, out: &mut Vec<Diagnostic>| {
        out.push(Diagnostic { severity: Severity::Error, position: Position::file(path), message });
        None
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            return fail(format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20), out)
        }
        Ok(_) => {}
        Err(e) => return fail(format!("cannot read: {e}"), out),
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => fail(format!("cannot read: {e}"), out),
    }
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.strict_indentation = true;
    options.with_snippet = false;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options
}

fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str, out: &mut Vec<Diagnostic>) -> Option<T> {
    if text.trim().is_empty() {
        out.push(Diagnostic {
            severity: Severity::Error,
            position: Position::file(path),
            message: "file is empty".to_owned(),
        });
        return None;
    }
    match serde_saphyr::from_str_with_options::<T>(text, yaml_options()) {
        Ok(value) => Some(value),
        Err(error) => {
            let position = match error.location() {
                Some(location) if location.line() > 0 => Position::new(path, location),
                _ => Position::file(path),
            };
            let message = error.without_snippet().to_string();
            out.push(Diagnostic { severity: Severity::Error, position, message: strip_location(&message) });
            None
        }
    }
}

/// serde-saphyr appends " at line L column C" to some messages; the
/// position is already in front of ours.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains("column") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}
