//! The `type: rspamd` signer's settings.

use std::path::PathBuf;

use rotor_common::{FileMode, Interval};
use serde::Deserialize;

use crate::key_files::Ownership;
use crate::probe::ProbeSettings;
use crate::registry::PathSetting;

/// The `type: rspamd` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RspamdSettings {
    /// Where rspamd reads keys (`path = "<key_dir>/$domain.$selector.key"` in
    /// dkim_signing.conf).
    pub key_dir: PathBuf,
    /// The selector map (`selector_map = "…"` in dkim_signing.conf).
    pub selector_map: PathBuf,
    /// The file of domains that sign twice, included from dkim_signing.conf (needed for
    /// `keys: [rsa-…, ed25519]`).
    pub domains_file: Option<PathBuf>,
    /// A command that reloads rspamd (needed with `domains_file`; maps need none).
    pub reload: Option<String>,
    /// A command that checks rspamd's configuration before the reload, e.g.
    /// `rspamadm configtest`; if it fails, the previous files are restored.
    pub configtest: Option<String>,
    /// How long `configtest` and `reload` may each run before they are killed (default 60s).
    pub timeout: Option<Interval>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`).
    pub group: Option<String>,
    /// Mode of the key files (default 0600).
    pub mode: Option<FileMode>,
    /// How rotor has the signer sign a probe message after each switch, and verifies it
    /// (without it, a switch is taken on trust).
    pub probe: Option<ProbeSettings>,
}

impl RspamdSettings {
    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.domains_file.is_some() && self.reload.is_none() {
            return Err(
                "`domains_file:` changes need a reload: set `reload:` (e.g. `systemctl reload rspamd`)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The files and directories the adapter writes, by setting.
    pub fn paths(&self) -> Vec<(PathSetting, PathBuf)> {
        let mut paths = vec![
            (PathSetting::Key("key_dir"), self.key_dir.clone()),
            (PathSetting::Key("selector_map"), self.selector_map.clone()),
        ];
        paths.extend(
            (self.domains_file.iter()).map(|file| (PathSetting::Key("domains_file"), file.clone())),
        );
        paths
    }

    /// The commands it runs, by setting.
    pub fn commands(&self) -> Vec<(&'static str, Option<&String>)> {
        vec![
            ("reload", self.reload.as_ref()),
            ("configtest", self.configtest.as_ref()),
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
