//! Mail signers: each adapter makes one signer sign a domain with the keys rotor gives it.
//!
//! A [`SignerPlan`] is the whole desired state of one domain in a signer (the binary derives it
//! from the store), so applying it twice is harmless and a run that died midway simply applies it
//! again. A switch has three steps, so that several signers move together: every signer is given
//! the new key files first ([`Signer::stage`]), then each switches ([`Signer::switch`]), and only
//! when all have switched are old key files deleted ([`Signer::clean`]). A switch takes the plans
//! of many domains, so that a pass that moves 10,000 domains rewrites a signer's tables and
//! reloads it once.
//!
//! One folder per adapter (`opendkim/`, `rspamd/`, `exim/`, `kumomta/`, `files/`), each with its
//! settings (`settings.rs`) and the adapter; [`registry`] turns a `type:`-tagged entry of the
//! config into an adapter. Shared: [`key_files`] (key files with owner and mode), [`tables`]
//! (maps and tables rewritten as one set, restored on failure), [`command`] (every command the
//! signers run), [`reload`] (a command, or a signal to a checked process), [`probe`] (a probe message signed
//! through a milter, rspamd or a command), [`fs`] (atomic owned
//! writes, private directories, the sweep of leftover temporary files), [`SignerError`].

pub mod command;
pub use rotor_common::crashpoint;
mod error;
pub mod exim;
pub mod files;
pub mod fs;
pub mod key_files;
pub mod kumomta;
pub mod opendkim;
pub mod probe;
pub mod registry;
pub mod reload;
pub mod rspamd;
pub mod tables;

pub use error::{Result, SignerError};
pub use registry::SignerSettings;
pub use reload::{PidFile, Reload};

use std::path::{Path, PathBuf};

use rotor_common::KeyAlgorithm;

use key_files::KeyFiles;

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
    /// Every key the signer should hold a file for: signing and kept.
    pub fn installed(&self) -> impl Iterator<Item = &SignerKey> {
        self.signing.iter().chain(&self.kept)
    }
}

/// `selector._domainkey.domain`, the name of a key's record (and of its OpenDKIM KeyTable row).
pub fn selector_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// What every signer adapter does.
pub trait Signer: Send + Sync {
    /// Where the signer reads keys (`None`: it reads no key files of rotor's).
    fn key_files(&self) -> Option<&KeyFiles> {
        None
    }

    /// Puts the key files of `plan` (signing and kept keys) where the signer reads keys, with
    /// its owner, group and mode. The signer's configuration is not touched: it signs as before.
    fn stage(&self, plan: &SignerPlan) -> Result<()> {
        self.key_files().map_or(Ok(()), |keys| keys.stage(plan))
    }

    /// Makes the signer sign as `plans` say, for every domain among them at once (one plan per
    /// domain): its maps or tables written once, then its reload and check run once. On any
    /// failure, its previous files are restored (for every domain) and an error returned.
    fn switch(&self, plans: &[SignerPlan]) -> Result<()>;

    /// Deletes the key files of `plan.removed`, once every signer has switched away from them.
    fn clean(&self, plan: &SignerPlan) -> Result<()> {
        self.key_files().map_or(Ok(()), |keys| keys.clean(plan))
    }

    /// Checks that the signer's files and directories are usable.
    fn check(&self) -> Result<()>;

    /// How the signer is asked to sign a probe message after a switch (`None`: it is not, and
    /// its switches are taken on trust).
    fn probe(&self) -> Option<&probe::ProbeSettings> {
        None
    }

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
        for dir in tables::FileSet::dirs(&self.table_files()) {
            fs::sweep_temp_files(&dir)?;
        }
        Ok(())
    }
}

/// A key for the adapters' tests: its source file holds a real private key of `algorithm`.
#[cfg(test)]
pub(crate) fn test_key(dir: &Path, selector: &str, algorithm: KeyAlgorithm) -> SignerKey {
    let source = dir.join(format!("{selector}.src.pem"));
    let key = rotor_keys::PrivateKey::generate(algorithm).unwrap();
    std::fs::write(&source, key.pem()).unwrap();
    SignerKey {
        selector: selector.into(),
        algorithm,
        source,
    }
}
