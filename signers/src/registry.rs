//! The signers rotor knows, by the `type:` of their config entry: the one place that names every
//! adapter. Adding a signer adds a variant here (and a line in each `match`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::{Signer, exim, files, kumomta, opendkim, rspamd};

/// A mail signer's settings, tagged by `type:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SignerSettings {
    /// OpenDKIM with KeyTable and SigningTable files.
    Opendkim(opendkim::OpendkimSettings),
    /// rspamd's dkim_signing module: a selector map, and a domains file for dual signing.
    Rspamd(rspamd::RspamdSettings),
    /// Exim's smtp transport, through an lsearch file.
    Exim(exim::EximSettings),
    /// KumoMTA's DKIM helper data file.
    Kumomta(kumomta::KumomtaSettings),
    /// Any other signer: files rendered from templates, a reload and a verify command.
    Files(files::FilesSettings),
}

/// A setting of a signer that holds a path rotor writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathSetting {
    /// A key of the signer's entry (`key_dir`, `table`…).
    Key(&'static str),
    /// `files[N].path` of a `type: files` signer (a template).
    File(usize),
}

impl SignerSettings {
    /// Checks what serde cannot: settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Opendkim(settings) => settings.validate(),
            Self::Rspamd(settings) => settings.validate(),
            Self::Files(settings) => settings.validate(),
            Self::Exim(_) | Self::Kumomta(_) => Ok(()),
        }?;
        let (probe, name, accepts): (_, _, &[&str]) = match self {
            Self::Opendkim(s) => (&s.probe, "opendkim", &["milter"]),
            Self::Rspamd(s) => (&s.probe, "rspamd", &["rspamd"]),
            Self::Exim(s) => (&s.probe, "exim", &[]),
            Self::Kumomta(s) => (&s.probe, "kumomta", &[]),
            Self::Files(s) => (&s.probe, "files", &[]),
        };
        probe
            .as_ref()
            .map_or(Ok(()), |probe| probe.validate(name, accepts))
    }

    /// Whether the signer can sign each message twice (RSA and Ed25519), or why not.
    pub fn dual_signing(&self) -> Result<(), &'static str> {
        match self {
            // Debian's OpenDKIM has one global SignatureAlgorithm.
            Self::Opendkim(_) => Err("OpenDKIM signs with one algorithm for all keys"),
            Self::Rspamd(settings) if settings.domains_file.is_none() => {
                Err("rspamd signs twice only through `domains_file:`")
            }
            Self::Files(settings) if !settings.dual_signing => {
                Err("set `dual_signing: true` if its templates sign with every key")
            }
            Self::Kumomta(_) => Err(
                "KumoMTA's DKIM helper signs a domain once (its additional_signatures apply to every message); sign twice with your own policy and a `type: files` signer",
            ),
            Self::Rspamd(_) | Self::Exim(_) | Self::Files(_) => Ok(()),
        }
    }

    /// The adapter for these settings.
    pub fn build(&self) -> Box<dyn Signer> {
        match self {
            Self::Opendkim(settings) => Box::new(opendkim::Opendkim::new(settings.clone())),
            Self::Rspamd(settings) => Box::new(rspamd::Rspamd::new(settings.clone())),
            Self::Exim(settings) => Box::new(exim::Exim::new(settings.clone())),
            Self::Kumomta(settings) => Box::new(kumomta::Kumomta::new(settings.clone())),
            Self::Files(settings) => Box::new(files::Files::new(settings.clone())),
        }
    }

    /// The directories and files the adapter writes, by setting (checked at load time: absolute,
    /// none shared with another signer or with rotor).
    pub fn paths(&self) -> Vec<(PathSetting, PathBuf)> {
        match self {
            Self::Opendkim(settings) => settings.paths(),
            Self::Rspamd(settings) => settings.paths(),
            Self::Exim(settings) => settings.paths(),
            Self::Kumomta(settings) => settings.paths(),
            Self::Files(settings) => settings.paths(),
        }
    }

    /// The `user` and `group` the key files are given, as configured.
    pub fn owner(&self) -> (Option<&String>, Option<&String>) {
        let (user, group) = match self {
            Self::Opendkim(s) => (&s.user, &s.group),
            Self::Rspamd(s) => (&s.user, &s.group),
            Self::Exim(s) => (&s.user, &s.group),
            Self::Kumomta(s) => (&s.user, &s.group),
            Self::Files(s) => (&s.user, &s.group),
        };
        (user.as_ref(), group.as_ref())
    }

    /// The commands the adapter runs, by setting (a blank one is refused at load time).
    pub fn commands(&self) -> Vec<(&'static str, Option<&String>)> {
        match self {
            Self::Opendkim(settings) => settings.commands(),
            Self::Rspamd(settings) => settings.commands(),
            Self::Exim(settings) => settings.commands(),
            Self::Kumomta(settings) => settings.commands(),
            Self::Files(settings) => settings.commands(),
        }
    }
}
