//! The `type: exim` signer's settings.

use std::path::PathBuf;

use rotor_common::{FileMode, Interval};
use serde::Deserialize;

use crate::key_files::Ownership;
use crate::probe::ProbeSettings;
use crate::registry::PathSetting;

/// The `type: exim` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EximSettings {
    /// The lsearch file the transport looks up.
    pub table: PathBuf,
    /// Where Exim reads keys.
    pub key_dir: PathBuf,
    /// A command run after the table changed (none needed: Exim reads it per delivery).
    pub reload: Option<String>,
    /// How long `reload` may run before it is killed (default 60s).
    pub timeout: Option<Interval>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`), the group Exim runs as.
    pub group: Option<String>,
    /// Mode of the key files (default 0640).
    pub mode: Option<FileMode>,
    /// How rotor has the signer sign a probe message after each switch, and verifies it
    /// (without it, a switch is taken on trust).
    pub probe: Option<ProbeSettings>,
}

impl EximSettings {
    /// The files and directories the adapter writes, by setting.
    pub fn paths(&self) -> Vec<(PathSetting, PathBuf)> {
        vec![
            (PathSetting::Key("key_dir"), self.key_dir.clone()),
            (PathSetting::Key("table"), self.table.clone()),
        ]
    }

    /// The commands it runs, by setting.
    pub fn commands(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            ("reload", self.reload.as_ref()),
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
