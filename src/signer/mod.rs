//! Mail signers: each adapter makes one signer sign a domain with the keys rotor gives it.
//!
//! A [`SignerPlan`] is the whole desired state of one domain in a signer, derived from the
//! store, so applying it twice is harmless and a run that died midway simply applies it again.

pub mod opendkim;
mod reload;

pub use reload::Reload;

use std::path::PathBuf;

use anyhow::Result;
use rotor_state::{KeyRecord, Phase};

use crate::config::SignerConfig;

/// A key as a signer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerKey {
    /// The selector.
    pub selector: String,
    /// Rotor's private key file, which the adapter copies where the signer reads keys.
    pub source: PathBuf,
}

impl SignerKey {
    fn from_record(key: &KeyRecord) -> Self {
        Self {
            selector: key.selector.clone(),
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
    /// signer in this step.
    pub fn from_keys(domain: &str, after: &[KeyRecord], removed: &[&KeyRecord]) -> Self {
        let with_phase = |phase: Phase| {
            after
                .iter()
                .filter(|key| key.phase == phase)
                .map(SignerKey::from_record)
                .collect()
        };
        Self {
            domain: domain.to_string(),
            signing: with_phase(Phase::Active),
            kept: with_phase(Phase::Retiring),
            removed: removed
                .iter()
                .map(|key| SignerKey::from_record(key))
                .collect(),
        }
    }
}

/// What every signer adapter does.
pub trait Signer {
    /// Makes the signer match `plan`: keys in place, tables written, signer reloaded. On any
    /// failure, the signer's previous files are restored and an error returned.
    fn apply(&self, plan: &SignerPlan) -> Result<()>;

    /// Checks that the signer's files and directories are usable.
    fn check(&self) -> Result<()>;
}

/// The adapter for a configured signer.
pub fn build(config: &SignerConfig) -> Box<dyn Signer> {
    match config {
        SignerConfig::Opendkim(config) => Box::new(opendkim::Opendkim::new(config.clone())),
    }
}
