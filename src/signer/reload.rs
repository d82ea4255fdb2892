//! Telling a signer to re-read its configuration: a command, or a signal to a pid.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How a signer is reloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// Run this through `sh -c`.
    Command(String),
    /// Send this signal to the pid in this file.
    Signal(PathBuf, Signal),
}

/// Runs `command` (through `sh -c`) if one is configured; nothing to run is a success.
pub fn run_optional(command: Option<&String>) -> Result<()> {
    match command {
        Some(command) => Reload::Command(command.clone()).run(),
        None => Ok(()),
    }
}

impl Reload {
    /// Reloads the signer; an error carries the command's output.
    pub fn run(&self) -> Result<()> {
        match self {
            Self::Command(command) => {
                let output = Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .output()
                    .with_context(|| format!("cannot run reload command {command:?}"))?;
                if !output.status.success() {
                    bail!(
                        "reload command {command:?} failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    );
                }
                Ok(())
            }
            Self::Signal(pid_file, signal) => {
                let pid = self.pid(pid_file)?;
                kill(pid, *signal).with_context(|| {
                    format!(
                        "cannot send {signal} to pid {pid} (from {})",
                        pid_file.display()
                    )
                })
            }
        }
    }

    /// Checks that the reload can work: the pid file names a live process.
    pub fn check(&self) -> Result<()> {
        match self {
            Self::Command(_) => Ok(()),
            Self::Signal(pid_file, _) => {
                let pid = self.pid(pid_file)?;
                kill(pid, None).with_context(|| {
                    format!("process {pid} from {} is not running", pid_file.display())
                })
            }
        }
    }

    fn pid(&self, pid_file: &PathBuf) -> Result<Pid> {
        let text = std::fs::read_to_string(pid_file)
            .with_context(|| format!("cannot read pid file {}", pid_file.display()))?;
        let pid: i32 = text
            .trim()
            .parse()
            .with_context(|| format!("pid file {} does not hold a pid", pid_file.display()))?;
        Ok(Pid::from_raw(pid))
    }
}
