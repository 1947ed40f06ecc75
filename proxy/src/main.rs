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
    },
    /// Try portcullis: a demo issuer, echo upstream and policy, all on loopback. Not for production.
    Demo {
        /// Proxy port (the issuer, upstream and admin ports follow it).
        #[arg(long, default_value_t = 8080)]
        port: u16,
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
        Command::Explain { method, path, scopes, host, issuer } => match need_config() {
            Ok(config) => {
                let question = portcullis::Question {
                    method: &method,
                    path: &path,
                    host: host.as_deref(),
                    scopes: &scopes,
                    issuer: issuer.as_deref(),
                };
                let (text, code) = portcullis::explain(&config, &question);
                print!("{text}");
                return ExitCode::from(code as u8);
            }
            Err(code) => return usage(code),
        },
        Command::Demo { port } => portcullis::run_demo(port),
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
