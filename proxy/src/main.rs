//! The `portcullis` command line: run, check, explain, demo.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: measurably faster than the system allocator for the many small,
/// short-lived allocations of request handling (see the README's Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An identity-aware reverse proxy: bearer tokens, route policies, identity headers."
)]
struct Cli {
    /// Configuration file (same as `run -c FILE` when no command is given).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a configuration file.
    Run,
    /// Validate the configuration and every policy file it includes, without serving.
    Check,
    /// Show which route a request matches, what it requires, and the answer a token would get.
    Explain {
        /// HTTP method, e.g. GET.
        method: String,
        /// Request path, e.g. /todos/42.
        path: String,
        /// A scope the token would carry (repeatable).
        #[arg(long = "scope", short = 's')]
        scopes: Vec<String>,
        /// Host the request is sent to (for host-restricted routes).
        #[arg(long)]
        host: Option<String>,
        /// Name of the issuer the token would come from.
        #[arg(long)]
        issuer: Option<String>,
        /// A claim the token would carry, NAME=VALUE (VALUE as JSON when it
        /// parses: true, 42, ["ops","sre"]; else a string). Repeatable.
        #[arg(long = "claim")]
        claims: Vec<String>,
    },
    /// API keys: `keys new` prints a new key and its key file entry.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Revoke a token (by jti or whole), or every token of a subject, in the
    /// configured Redis: every replica refuses it within a second.
    Revoke {
        /// The token's `jti` (an API key's id).
        #[arg(long, conflicts_with_all = ["token_file", "subject"])]
        jti: Option<String>,
        /// A file holding the whole token (only its SHA-256 is stored).
        #[arg(long, conflicts_with = "subject")]
        token_file: Option<PathBuf>,
        /// Every token of this subject issued before --before.
        #[arg(long)]
        subject: Option<String>,
        /// Only tokens of this configured issuer (or `api_key`).
        #[arg(long)]
        issuer: Option<String>,
        /// With --subject: tokens issued before this time (default now):
        /// 2026-12-31 or 2026-12-31T10:00:00Z.
        #[arg(long, requires = "subject")]
        before: Option<String>,
        /// With --jti: when the token expires (default: now plus revocation.max_token_lifetime).
        #[arg(long, requires = "jti")]
        expires: Option<String>,
    },
    /// Try portcullis: a demo issuer, echo upstream and policy, all on loopback. Not for production.
    Demo {
        /// Proxy port (the issuer, upstream and admin ports follow it).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new API key (once, on the first line), then the entry to paste under `keys:` in a key file.
    New {
        /// Who the key stands for (the identity's `sub`).
        #[arg(long)]
        subject: String,
        /// A scope the key carries (repeatable).
        #[arg(long = "scope", short = 's')]
        scopes: Vec<String>,
        /// The entry's id (letters, digits, '-'); random when omitted.
        #[arg(long)]
        id: Option<String>,
        /// When the key stops working: 2027-01-31 or 2027-01-31T00:00:00Z (UTC).
        #[arg(long)]
        expires: Option<String>,
        /// A note kept in the entry (who asked, what for).
        #[arg(long)]
        note: Option<String>,
        /// One of `api_keys.issuers`, for routes that list it in `issuers`.
        #[arg(long)]
        issuer: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    let need_config = || match &cli.config {
        Some(path) => Ok(path.clone()),
        None => Err(ExitCode::from(2)),
    };
    let result = match command {
        Command::Run => match need_config() {
            Ok(path) => run(path),
            Err(code) => return usage(code),
        },
        Command::Check => match need_config() {
            Ok(path) => {
                let code = portcullis::check(&path, &mut std::io::stdout()).unwrap_or(1);
                return ExitCode::from(code as u8);
            }
            Err(code) => return usage(code),
        },
        Command::Explain { method, path, scopes, host, issuer, claims } => match need_config() {
            Ok(config) => {
                let question = portcullis::Question {
                    method: &method,
                    path: &path,
                    host: host.as_deref(),
                    scopes: &scopes,
                    issuer: issuer.as_deref(),
                    claims: &claims,
                };
                let (text, code) = portcullis::explain(&config, &question);
                print!("{text}");
                return ExitCode::from(code as u8);
            }
            Err(code) => return usage(code),
        },
        Command::Demo { port } => portcullis::run_demo(port),
        Command::Revoke { jti, token_file, subject, issuer, before, expires } => match need_config() {
            Ok(path) => {
                let request = portcullis::CliRevocation {
                    jti: jti.as_deref(),
                    token_file: token_file.as_deref(),
                    subject: subject.as_deref(),
                    issuer: issuer.as_deref(),
                    before: before.as_deref(),
                    expires: expires.as_deref(),
                };
                portcullis::revoke_command(&path, request).map(|done| print!("{done}"))
            }
            Err(code) => return usage(code),
        },
        Command::Keys { command: KeysCommand::New { subject, scopes, id, expires, note, issuer } } => {
            let request = portcullis::KeyRequest {
                subject: &subject,
                scopes: &scopes,
                id: id.as_deref(),
                expires: expires.as_deref(),
                note: note.as_deref(),
                issuer: issuer.as_deref(),
            };
            return match portcullis::new_key(&request) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("portcullis: {message}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(code: ExitCode) -> ExitCode {
    eprintln!("portcullis: a configuration file is required: -c FILE (or try `portcullis demo`)");
    code
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let loaded = match config::load(&path, config::Mode::Serve) {
        Ok(loaded) => loaded,
        Err(error) => {
            // FILE:LINE:COL lines, then a one-line reason for the exit.
            eprintln!("{error}");
            anyhow::bail!("the configuration is invalid; nothing was started");
        }
    };
    portcullis::init_logging(&loaded.config.log);
    for warning in &loaded.warnings {
        tracing::warn!(target: "portcullis::config", "{warning}");
    }
    portcullis::serve(portcullis::Launch { config: loaded.config, config_path: Some(path), on_ready: None })
}
