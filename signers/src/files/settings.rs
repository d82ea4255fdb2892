//! The `type: files` signer's settings.

use std::path::PathBuf;

use rotor_common::{FileMode, Interval};
use serde::Deserialize;

use super::template::{SAMPLE_DOMAINS, environment, file_mode, sample_paths};
use crate::key_files::{KeyFormat, Ownership};
use crate::probe::ProbeSettings;
use crate::registry::PathSetting;

/// One file the signer reads, rendered per domain.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// Where it is written; a template too, which must give each domain its own file (e.g.
    /// with `{{ domain }}` in it).
    pub path: String,
    /// The file's contents, as a template.
    pub template: String,
    /// Mode of the written file (default 0644; it holds paths, not keys).
    pub mode: Option<String>,
}

/// The `type: files` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    /// Where the signer reads keys; files are named `<domain>.<selector>.<extension>`.
    pub key_dir: PathBuf,
    /// How keys are written: `pem` (default) or `ed25519_seed` (base64 seed for Ed25519).
    #[serde(default)]
    pub key_format: KeyFormatName,
    /// The files rendered for each domain.
    pub files: Vec<TemplateFile>,
    /// A command that makes the signer read them (none: it notices by itself).
    pub reload: Option<String>,
    /// A command run after the reload; if it fails, the previous files are restored (and the
    /// reload run again).
    pub verify: Option<String>,
    /// How long `reload` and `verify` may each run before they are killed (default 60s).
    pub timeout: Option<Interval>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`).
    pub group: Option<String>,
    /// Mode of the key files (default 0600).
    pub mode: Option<FileMode>,
    /// Whether the signer can sign with an RSA and an Ed25519 key at once.
    #[serde(default)]
    pub dual_signing: bool,
    /// How rotor has the signer sign a probe message after each switch, and verifies it
    /// (without it, a switch is taken on trust).
    pub probe: Option<ProbeSettings>,
}

/// The names `key_format:` takes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormatName {
    /// PKCS#8 PEM.
    #[default]
    Pem,
    /// PEM for RSA, base64 of the 32-byte seed for Ed25519.
    Ed25519Seed,
}

impl From<KeyFormatName> for KeyFormat {
    fn from(name: KeyFormatName) -> Self {
        match name {
            KeyFormatName::Pem => KeyFormat::Pem,
            KeyFormatName::Ed25519Seed => KeyFormat::Ed25519Seed,
        }
    }
}

impl FilesSettings {
    /// Checks the templates (syntax, and a per-domain path) and modes.
    pub fn validate(&self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("list at least one file under `files:`".into());
        }
        let env = environment();
        for (index, file) in self.files.iter().enumerate() {
            env.template_from_str(&file.path)
                .and_then(|_| env.template_from_str(&file.template))
                .map_err(|err| format!("files[{index}]: {err}"))?;
            let [one, other] = sample_paths(&env, &file.path)
                .map_err(|err| format!("files[{index}].path: {err}"))?;
            if one == other {
                return Err(format!(
                    "files[{index}].path gives {one} for both {} and {}: two domains would overwrite each other's file; put {{{{ domain }}}} in it",
                    SAMPLE_DOMAINS[0], SAMPLE_DOMAINS[1]
                ));
            }
            file_mode(file).map_err(|err| format!("files[{index}].mode: {err}"))?;
        }
        Ok(())
    }

    /// The files and directories the adapter writes, by setting (`files[N].path` as written,
    /// a template).
    pub fn paths(&self) -> Vec<(PathSetting, PathBuf)> {
        let mut paths = vec![(PathSetting::Key("key_dir"), self.key_dir.clone())];
        paths.extend(
            (self.files.iter().enumerate())
                .map(|(index, file)| (PathSetting::File(index), PathBuf::from(&file.path))),
        );
        paths
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
