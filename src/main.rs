//! `rotor`: DKIM key rotation orchestrator.

mod cli;
mod commands;
mod config;
mod crashpoint;
mod daemon;
mod engine;
mod fsutil;
mod keys;
mod lifecycle;
mod metrics;
mod notify;
mod propagation;
mod signer;
mod status;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use clap::CommandFactory;

use cli::{Cli, Command, LogFormat};
use commands::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("rotor: {err:#}");
            ExitCode::from(match err.downcast_ref::<Exit>() {
                Some(Exit::Usage(_)) => 2,
                Some(Exit::Locked(_)) => 75,
                None => 1,
            })
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<commands::Code> {
    // The commands that need no config.
    match cli.command {
        Command::Init => return commands::init(&cli.config),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rotor", &mut std::io::stdout());
            return Ok(0);
        }
        _ => {}
    }
    let config = commands::load(&cli.config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Run => runtime.block_on(commands::run(&config, &[])),
        Command::Daemon => runtime.block_on(daemon::run(&cli.config, config)),
        Command::Rotate { domains } => runtime.block_on(commands::run(&config, &domains)),
        Command::Status {
            domain,
            json,
            all,
            check,
        } => {
            let output = match (json, check) {
                (true, _) => commands::StatusOutput::Json,
                (_, true) => commands::StatusOutput::Check,
                _ => commands::StatusOutput::Table,
            };
            commands::status(&config, domain, output, all)
        }
        Command::Plan { json } => commands::plan(&config, json),
        Command::Check => runtime.block_on(commands::check(&config)),
        Command::History { domain, json } => commands::history(&config, &domain, json),
        Command::Revoke {
            domain,
            selector,
            reason,
            now,
            force,
        } => runtime.block_on(commands::revoke(
            &config,
            &domain,
            &selector,
            commands::Emergency { reason, now, force },
        )),
        Command::Init | Command::Completions { .. } => unreachable!("handled above"),
    }
}
