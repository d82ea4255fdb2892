//! The command line: clap definitions only.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// DKIM key rotation orchestrator: generates keys, publishes them in DNS, waits until every
/// nameserver has them, switches the mail signers, and retires old keys after a grace window.
#[derive(Debug, Parser)]
#[command(
    name = "rotor",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 all well; 1 a domain failed (check: a check failed; status: a warning); \
                  2 bad usage or config (status: a key failed); 75 another rotor holds the lock."
)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        env = "ROTOR_CONFIG",
        default_value = "/etc/rotor/rotor.yaml"
    )]
    pub config: PathBuf,

    /// More output: -v shows every step, -vv debugging detail (RUST_LOG overrides).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr: `human`, or `json` (one object per line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How `rotor providers` prints the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogueFormat {
    /// Aligned columns for a terminal.
    Text,
    /// A JSON array, one object per provider.
    Json,
    /// A Markdown table.
    Markdown,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

/// Rotor's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One pass: start due rotations and advance every key whose gate is open (for cron or a
    /// systemd timer; quiet when all is well).
    Run,
    /// Run passes on the config's `schedule` until SIGTERM (SIGHUP re-reads the config).
    Daemon,
    /// Show every domain's keys: phase, since when, what comes next and what it waits for.
    Status {
        /// Only this domain.
        domain: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Include retired and failed keys.
        #[arg(long)]
        all: bool,
        /// One line for Nagios/Icinga: `ROTOR OK - …`, `ROTOR WARNING - …`, `ROTOR CRITICAL - …`.
        #[arg(long, conflicts_with = "json")]
        check: bool,
    },
    /// Start a rotation of these domains now (every safety gate still applies).
    Rotate {
        /// Domains from the config.
        #[arg(required = true)]
        domains: Vec<String>,
    },
    /// Show what `rotor run` would do now, without doing it.
    Plan {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check the config, the providers' credentials, the resolvers and the signers' paths.
    Check,
    /// Emergency: replace a leaked key at once and revoke it (empty `p=`) without a grace window.
    Revoke {
        /// A domain from the config.
        domain: String,
        /// The leaked key's selector.
        selector: String,
        /// Why (kept in the history).
        #[arg(long)]
        reason: String,
        /// Let the replacement skip `min_wait` (resolvers that cached the new name's absence
        /// may fail verification until their negative TTL runs out).
        #[arg(long)]
        now: bool,
        /// Revoke even if no replacement can be activated yet: the domain's mail goes unsigned
        /// (for that key's algorithm) until one is.
        #[arg(long)]
        force: bool,
    },
    /// Every transition of a domain's keys, with its time, evidence and errors.
    History {
        /// A domain from the config.
        domain: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// What DMARC aggregate reports said of a domain's DKIM selectors: messages that passed
    /// and failed, per selector and day, and who reported them.
    Report {
        /// A domain from the config.
        domain: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the DNS providers rotor supports: the `type:` that selects each, what it can do,
    /// what proves it works, its cargo feature (needs no config).
    Providers {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// A Markdown table (the README's provider table is this output).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
    /// Write a commented starter config to the --config path (never over an existing file).
    Init,
    /// Print a shell completion script (e.g. `rotor completions bash > /etc/bash_completion.d/rotor`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}
