//! The `type: opendkim` signer's settings.

use std::path::PathBuf;

use rotor_common::{FileMode, Interval};
use rustix::process::Signal;
use serde::Deserialize;

use crate::key_files::Ownership;
use crate::probe::ProbeSettings;
use crate::registry::PathSetting;
use crate::{PidFile, Reload, command};

/// The `type: opendkim` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpendkimSettings {
    /// The `KeyTable` file (`file:` table).
    pub key_table: PathBuf,
    /// The `SigningTable` file (`refile:` table).
    pub signing_table: PathBuf,
    /// Where OpenDKIM reads keys (0700; keys are written 0600).
    pub key_dir: PathBuf,
    /// A command that reloads OpenDKIM, e.g. `systemctl reload opendkim`.
    pub reload: Option<String>,
    /// OpenDKIM's pid file: rotor sends SIGUSR1 to reload.
    pub pid_file: Option<PathBuf>,
    /// The name of the process in `pid_file` (its executable's file name or its command name):
    /// any other process there is not signalled (default `opendkim`).
    pub process: Option<String>,
    /// A command run after the reload (e.g. a test message through the milter); if it fails,
    /// the previous tables are restored and OpenDKIM reloaded again.
    pub verify: Option<String>,
    /// How long `reload` and `verify` may each run before they are killed (default 60s).
    pub timeout: Option<Interval>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`).
    pub group: Option<String>,
    /// Mode of the key files (default 0600; OpenDKIM refuses keys others can read).
    pub mode: Option<FileMode>,
    /// Keep signing with a replaced key through its grace window, beside the new one (needs
    /// `MultipleSignatures yes`).
    #[serde(default)]
    pub overlap: bool,
    /// How rotor has the signer sign a probe message after each switch, and verifies it
    /// (without it, a switch is taken on trust).
    pub probe: Option<ProbeSettings>,
}

impl OpendkimSettings {
    /// How to reload, or why the config cannot say.
    pub fn reload(&self) -> Result<Reload, String> {
        match (&self.reload, &self.pid_file) {
            (Some(line), None) => Ok(Reload::Command(line.clone(), command::timeout(self.timeout))),
            (None, Some(pid_file)) => Ok(Reload::Signal(PidFile {
                path: pid_file.clone(),
                signal: Signal::USR1,
                process: self.process.clone().unwrap_or_else(|| "opendkim".into()),
            })),
            (Some(_), Some(_)) => Err("set `reload:` or `pid_file:`, not both".into()),
            (None, None) => Err("set `reload:` (a command) or `pid_file:` (SIGUSR1), so OpenDKIM re-reads its tables".into()),
        }
    }

    /// Checks what serde cannot: settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        self.reload().map(drop)
    }

    /// The files and directories the adapter writes, by setting.
    pub fn paths(&self) -> Vec<(PathSetting, PathBuf)> {
        vec![
            (PathSetting::Key("key_dir"), self.key_dir.clone()),
            (PathSetting::Key("key_table"), self.key_table.clone()),
            (
                PathSetting::Key("signing_table"),
                self.signing_table.clone(),
            ),
        ]
    }

    /// The commands it runs, by setting.
    pub fn commands(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            ("reload", self.reload.as_ref()),
            ("verify", self.verify.as_ref()),
            (
                "probe.command",
                self.probe.as_ref().and_then(|p| p.command.as_ref()),
            ),
        ]
    }

    /// Who gets the key files.
    pub fn ownership(&self) -> Ownership {
        Ownership::new(&self.user, &self.group, self.mode)
    }
}
