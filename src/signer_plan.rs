//! What a signer should hold for a domain, derived from the store's key records: the one place a
//! signer's desired state is computed (the adapters in `rotor-signers` only apply it).

use rotor_signers::{SignerKey, SignerPlan};
use rotor_state::{KeyRecord, Phase};

/// A key as a signer needs it.
fn signer_key(key: &KeyRecord) -> SignerKey {
    SignerKey {
        selector: key.selector.clone(),
        algorithm: key.algorithm,
        source: key.key_file.clone(),
    }
}

/// The plan for `domain` once its keys are as in `after`; `removed` are keys leaving the
/// signer in this step (with every leaked key not active any more).
pub fn from_keys(domain: &str, after: &[KeyRecord], removed: &[&KeyRecord]) -> SignerPlan {
    // A leaked key that is no longer the active one leaves the signer at once: never kept,
    // not even for signers that sign with kept keys (OpenDKIM's `overlap`).
    let leaving = |key: &KeyRecord| key.compromised.is_some() && key.phase != Phase::Active;
    let with_phase = |phase: Phase| {
        after
            .iter()
            .filter(|key| key.phase == phase && !leaving(key))
            .map(signer_key)
            .collect()
    };
    let leaked = after
        .iter()
        .filter(|key| leaving(key) && !removed.iter().any(|r| r.selector == key.selector));
    SignerPlan {
        domain: domain.to_string(),
        signing: with_phase(Phase::Active),
        kept: with_phase(Phase::Retiring),
        removed: removed
            .iter()
            .copied()
            .chain(leaked)
            .map(signer_key)
            .collect(),
    }
}
