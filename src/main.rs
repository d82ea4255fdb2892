//! `rotor`: DKIM key rotation orchestrator.

mod cli;
mod commands;
mod config;
mod daemon;
mod dmarc;
mod engine;
mod metrics;
mod notify;
mod plan;
mod probe;
mod progress;
mod propagation;
mod report;
mod signer_plan;
mod status;
mod time;

// Shared with the signers (key files need them): the same paths as when they lived here.
use rotor_keys as keys;
use rotor_signers::{crashpoint, fs as fsutil};

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::mem::ManuallyDrop;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use clap::CommandFactory;

use cli::{Cli, Command, LogFormat};
use commands::Exit;

fn main() -> ExitCode {
    drop_empty_variables();
    install_panic_hook();
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // Without RUST_LOG, the AWS SDK's own warnings stay quiet (it warns three times per run
    // that the instance metadata service has no region when none is set).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},aws_config=error")));
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

/// Empty `AWS_*` and `ROTOR_*` variables (a systemd `EnvironmentFile` line `NAME=`) mean unset:
/// the AWS SDK panics on an empty `AWS_ENDPOINT_URL_ROUTE_53`, for one.
fn drop_empty_variables() {
    let empty: Vec<OsString> = std::env::vars_os()
        .filter(|(name, value)| {
            let ours = name
                .to_str()
                .is_some_and(|name| name.starts_with("AWS_") || name.starts_with("ROTOR_"));
            ours && value.to_str().is_some_and(|value| value.trim().is_empty())
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        // SAFETY: called first in `main`, before any other thread exists (no runtime, no
        // logger yet), so nothing reads or writes the environment at the same time.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var(name)
        };
    }
}

/// A panic in any thread (the runtime's workers too) prints one line and exits 1; the
/// standard message and backtrace only with `RUST_BACKTRACE` set.
fn install_panic_hook() {
    let detailed = std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0");
    let standard = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if detailed {
            standard(info);
        }
        let payload = info.payload();
        let message = (payload.downcast_ref::<&str>().copied())
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        let at = info.location().map_or_else(
            || "an unknown place".to_string(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        // Never a second panic here (stderr may be a closed pipe).
        let _ = writeln!(
            std::io::stderr(),
            "rotor: internal error: {message} at {at}; please report it"
        );
        std::process::exit(1);
    }));
}

fn dispatch(cli: Cli) -> anyhow::Result<commands::Code> {
    // The commands that need no config.
    match cli.command {
        Command::Init => return commands::init(&cli.config),
        Command::Providers { json, markdown } => {
            let format = match (json, markdown) {
                (true, _) => cli::CatalogueFormat::Json,
                (_, true) => cli::CatalogueFormat::Markdown,
                _ => cli::CatalogueFormat::Text,
            };
            return commands::providers(format);
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rotor", &mut std::io::stdout());
            return Ok(0);
        }
        _ => {}
    }
    // Left to the process's exit rather than freed (the daemon keeps its own): a config of
    // 100,000 domains takes a tenth of a second to free, allocation by allocation.
    let config = ManuallyDrop::new(commands::load(&cli.config)?);
    let runtime = tokio::runtime::Runtime::new()?;
    // Bars on a terminal, for people; nothing from cron or a timer, or with JSON logs.
    let progress = || {
        let shown = std::io::stderr().is_terminal() && cli.log_format == LogFormat::Human;
        progress::Progress::new(shown)
    };
    match cli.command {
        Command::Run => runtime.block_on(commands::run(&config, &[], progress())),
        Command::Daemon => {
            runtime.block_on(daemon::run(&cli.config, ManuallyDrop::into_inner(config)))
        }
        Command::Rotate { domains } => {
            runtime.block_on(commands::run(&config, &domains, progress()))
        }
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
        Command::Report { domain, json } => commands::report(&config, &domain, json),
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
        Command::Init | Command::Providers { .. } | Command::Completions { .. } => {
            unreachable!("handled above")
        }
    }
}
