//! Mail signers: each adapter makes one signer sign a domain with the keys rotor gives it.
//!
//! A [`SignerPlan`] is the whole desired state of one domain in a signer, derived from the
//! store, so applying it twice is harmless and a run that died midway simply applies it again.
//! A switch has three steps, so that several signers move together: every signer is given the
//! new key files first ([`Signer::stage`]), then each switches ([`Signer::switch`]), and only
//! when all have switched are old key files deleted ([`Signer::clean`]).

pub mod command;
pub mod exim;
pub mod files;
pub mod generic;
pub mod kumomta;
pub mod opendkim;
mod reload;
pub mod rspamd;

pub use reload::{PidFile, Reload};

use std::path::{Path, PathBuf};

use anyhow::Result;
use rotor_state::{KeyRecord, Phase};

use crate::config::SignerConfig;
use crate::keys::KeyAlgorithm;
use files::KeyFiles;

/// A key as a signer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerKey {
    /// The selector.
    pub selector: String,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// Rotor's private key file, which the adapter copies where the signer reads keys.
    pub source: PathBuf,
}

impl SignerKey {
    fn from_record(key: &KeyRecord) -> Self {
        Self {
            selector: key.selector.clone(),
            algorithm: key.algorithm,
            source: key.key_file.clone(),
        }
    }
}

/// What one domain should look like in a signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerPlan {
    /// The domain.
    pub domain: String,
    /// Keys to sign with.
    pub signing: Vec<SignerKey>,
    /// Keys to keep installed but not sign with (replaced keys in their grace window).
    pub kept: Vec<SignerKey>,
    /// Keys to take out and delete.
    pub removed: Vec<SignerKey>,
}

impl SignerPlan {
    /// The plan for `domain` once its keys are as in `after`; `removed` are keys leaving the
    /// signer in this step (with every leaked key not active any more).
    pub fn from_keys(domain: &str, after: &[KeyRecord], removed: &[&KeyRecord]) -> Self {
        // A leaked key that is no longer the active one leaves the signer at once: never kept,
        // not even for signers that sign with kept keys (OpenDKIM's `overlap`).
        let leaving = |key: &KeyRecord| key.compromised.is_some() && key.phase != Phase::Active;
        let with_phase = |phase: Phase| {
            after
                .iter()
                .filter(|key| key.phase == phase && !leaving(key))
                .map(SignerKey::from_record)
                .collect()
        };
        let leaked = after
            .iter()
            .filter(|key| leaving(key) && !removed.iter().any(|r| r.selector == key.selector));
        Self {
            domain: domain.to_string(),
            signing: with_phase(Phase::Active),
            kept: with_phase(Phase::Retiring),
            removed: removed
                .iter()
                .copied()
                .chain(leaked)
                .map(SignerKey::from_record)
                .collect(),
        }
    }
}

impl SignerPlan {
    /// Every key the signer should hold a file for: signing and kept.
    pub fn installed(&self) -> impl Iterator<Item = &SignerKey> {
        self.signing.iter().chain(&self.kept)
    }
}

/// What every signer adapter does.
pub trait Signer {
    /// Where the signer reads keys (`None`: it reads no key files of rotor's).
    fn key_files(&self) -> Option<&KeyFiles> {
        None
    }

    /// Puts the key files of `plan` (signing and kept keys) where the signer reads keys, with
    /// its owner, group and mode. The signer's configuration is not touched: it signs as before.
    fn stage(&self, plan: &SignerPlan) -> Result<()> {
        self.key_files().map_or(Ok(()), |keys| keys.stage(plan))
    }

    /// Makes the signer sign as `plan` says: its maps or tables written, then its reload and
    /// check run. On any failure, its previous files are restored and an error returned.
    fn switch(&self, plan: &SignerPlan) -> Result<()>;

    /// Deletes the key files of `plan.removed`, once every signer has switched away from them.
    fn clean(&self, plan: &SignerPlan) -> Result<()> {
        self.key_files().map_or(Ok(()), |keys| keys.clean(plan))
    }

    /// Checks that the signer's files and directories are usable.
    fn check(&self) -> Result<()>;

    /// The maps or tables rotor rewrites for this signer (whose directories [`Signer::sweep`]
    /// sweeps).
    fn table_files(&self) -> Vec<&Path> {
        Vec::new()
    }

    /// Removes rotor's temporary files left by a run that died between writing and renaming
    /// them (a key file's may hold a private key): in the key directory and beside every table.
    /// The engine calls it for every signer at the start of each pass, under the lock.
    fn sweep(&self) -> Result<()> {
        if let Some(keys) = self.key_files() {
            keys.sweep()?;
        }
        for dir in files::FileSet::dirs(&self.table_files()) {
            crate::fsutil::sweep_temp_files(&dir)?;
        }
        Ok(())
    }
}

/// The adapter for a configured signer.
pub fn build(config: &SignerConfig) -> Box<dyn Signer> {
    match config {
        SignerConfig::Opendkim(config) => Box::new(opendkim::Opendkim::new(config.clone())),
        SignerConfig::Rspamd(config) => Box::new(rspamd::Rspamd::new(config.clone())),
        SignerConfig::Exim(config) => Box::new(exim::Exim::new(config.clone())),
        SignerConfig::Kumomta(config) => Box::new(kumomta::Kumomta::new(config.clone())),
        SignerConfig::Files(config) => Box::new(generic::Files::new(config.clone())),
    }
}

/// A key for the adapters' tests: its source file holds a real private key of `algorithm`.
#[cfg(test)]
pub fn test_key(dir: &std::path::Path, selector: &str, algorithm: KeyAlgorithm) -> SignerKey {
    let source = dir.join(format!("{selector}.src.pem"));
    let key = crate::keys::PrivateKey::generate(algorithm).unwrap();
    std::fs::write(&source, key.pem()).unwrap();
    SignerKey {
        selector: selector.into(),
        algorithm,
        source,
    }
}
