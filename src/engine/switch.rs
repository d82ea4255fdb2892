//! Switching the signers: key files staged on every signer of a domain, each switched, old
//! files deleted once all have switched, and a key's retirement reaching signers that left.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use rotor_common::ErrorKind;
use rotor_signers::{Signer, SignerKey};
use rotor_state::{Action, KeyRecord};
use zeroize::Zeroizing;

use super::{Engine, failure};
use crate::config::DomainConfig;
use crate::keys::{DkimRecord, PrivateKey};
use crate::{crashpoint, fsutil, signer_plan};

impl Engine<'_> {
    /// Moves every signer of `domain` to the keys of `after` (without `removed`): the key files
    /// placed on all of them first, then each switched; old files are deleted only once all have
    /// switched. A signer that fails is rolled back by its adapter and the others keep their new
    /// state (every key they may sign with is still published); the error names each failure,
    /// `key`'s record says where each signer stands, and the next run tries again.
    ///
    /// With `prove`, each switched signer that has a `probe:` must then sign a probe with the
    /// keys it now signs with; one that does not is switched back to the keys it signed with
    /// before (as the store holds them), and counts as failed.
    pub(super) async fn apply_signers(
        &self,
        domain: &DomainConfig,
        key: &KeyRecord,
        after: &mut [KeyRecord],
        removed: &[&KeyRecord],
        prove: bool,
    ) -> Result<()> {
        let plan = signer_plan::from_keys(domain.name.as_str(), after, removed);
        let holds =
            |keys: &[SignerKey], key: &KeyRecord| keys.iter().any(|k| k.selector == key.selector);
        for key in after
            .iter()
            .filter(|k| holds(&plan.signing, k) || holds(&plan.kept, k))
        {
            matches_its_record(key)?;
        }
        // The keys leaving the signers (those asked for, and any leaked key the plan drops).
        let leaving: Vec<KeyRecord> = after
            .iter()
            .filter(|k| holds(&plan.removed, k))
            .cloned()
            .collect();
        let signers: Vec<(&String, &dyn Signer)> = domain
            .signers
            .iter()
            .map(|name| (name, self.parts.signers[name].as_ref()))
            .collect();
        for (name, signer) in &signers {
            signer
                .stage(&plan)
                .with_context(|| format!("signer {name}: placing the key files"))?;
        }
        // The step's name for the crash points (the intent is recorded by now).
        let step = key.intent.map_or("signers", Action::id);
        crashpoint::hit(step, "staged");
        let previous = match prove {
            true => {
                let stored = self.store.domain_keys(&key.domain)?;
                Some(signer_plan::from_keys(domain.name.as_str(), &stored, &[]))
            }
            false => None,
        };
        let mut states = BTreeMap::new();
        let mut failures = Vec::new();
        let mut kinds = BTreeSet::new();
        let mut probes = BTreeMap::new();
        for (name, signer) in &signers {
            let mut outcome = signer
                .switch(&plan)
                .map_err(|err| (err.kind(), format!("{err:#}")));
            if let (Ok(()), Some(previous)) = (&outcome, &previous) {
                let (result, proven) = self
                    .prove_or_switch_back(name, *signer, &plan, previous, after)
                    .await;
                if let Some(result) = result {
                    probes.insert(name.to_string(), result);
                }
                outcome = proven;
            }
            let state = match outcome {
                Ok(()) => None,
                Err((kind, err)) => {
                    kinds.insert(kind);
                    failures.push(format!("signer {name}: {err}"));
                    Some(format!("failed, kept its previous keys: {err}"))
                }
            };
            states.insert(name.to_string(), state);
        }
        if !failures.is_empty() {
            let current = self.key(key)?;
            let mut noted = current.clone();
            Self::note_probes(&mut noted, &probes);
            for (name, state) in &states {
                let done = if plan.removed.is_empty() {
                    "signing"
                } else {
                    "removed"
                };
                let state = state.clone().unwrap_or_else(|| done.to_string());
                noted.signers.insert(name.clone(), state);
            }
            self.store.commit(&[(Some(&current), &noted)], &[])?;
            // Worth retrying as it is only if every signer's failure is.
            let kind = kinds.into_iter().max().unwrap_or(ErrorKind::NeedsOperator);
            return Err(failure::Kinded {
                kind,
                message: failures.join("; "),
            }
            .into());
        }
        crashpoint::hit(step, "switched");
        // The probes proved every key the signers now sign with (RSA and Ed25519 together).
        for signing in after.iter_mut().filter(|k| holds(&plan.signing, k)) {
            Self::note_probes(signing, &probes);
        }
        for (name, signer) in &signers {
            signer
                .clean(&plan)
                .with_context(|| format!("signer {name}: deleting old key files"))?;
        }
        self.clean_departed(domain, &leaving.iter().collect::<Vec<_>>())?;
        // Every key records which signers hold it, so that its retirement reaches each of them,
        // even one taken out of the domain's `signers:` since.
        for record in after.iter_mut() {
            let state = if holds(&plan.removed, record) {
                "removed"
            } else if plan.signing.iter().any(|k| k.selector == record.selector) {
                "signing"
            } else if plan.kept.iter().any(|k| k.selector == record.selector) {
                "kept"
            } else {
                continue;
            };
            for name in &domain.signers {
                record.signers.insert(name.clone(), state.to_string());
            }
            if state == "removed" {
                for state in record.signers.values_mut() {
                    *state = "removed".to_string();
                }
            }
        }
        Ok(())
    }

    /// Takes the `removed` keys out of the signers that held them but no longer sign the domain
    /// (taken out of its `signers:`): their rows and key files go too. A signer that is not in
    /// the config any more cannot be reached: the key's retirement waits, and says why.
    pub(super) fn clean_departed(
        &self,
        domain: &DomainConfig,
        removed: &[&KeyRecord],
    ) -> Result<()> {
        let mut departed: BTreeMap<&str, Vec<&KeyRecord>> = BTreeMap::new();
        for key in removed {
            for (name, state) in &key.signers {
                if state != "removed" && !domain.signers.contains(name) {
                    departed.entry(name.as_str()).or_default().push(key);
                }
            }
        }
        for (name, keys) in departed {
            let Some(signer) = self.parts.signers.get(name) else {
                bail!(
                    "signer {name} held {} and is no longer in the config: rotor cannot take the key out of it, so its record stays published; put {name} back under `signers:` (it need not be in the domain's list) so the next run removes it",
                    keys.iter()
                        .map(|k| k.selector.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let plan = signer_plan::from_keys(domain.name.as_str(), &[], keys.as_slice());
            signer
                .switch(&plan)
                .and_then(|()| signer.clean(&plan))
                .with_context(|| {
                    format!(
                        "signer {name} (no longer a signer of {}): taking the old key out",
                        domain.name
                    )
                })?;
        }
        Ok(())
    }
}

/// Checks that rotor's private key file of `key` is the key whose record was published: a file
/// replaced since (by someone with access to rotor's key directory) is never handed to a signer.
fn matches_its_record(key: &KeyRecord) -> Result<()> {
    let algorithm = key.algorithm;
    let pem = fsutil::read_optional(&key.key_file)?.with_context(|| {
        format!(
            "{} {}: private key {} is missing",
            key.domain,
            key.selector,
            key.key_file.display()
        )
    })?;
    let record = PrivateKey::from_pem(algorithm, Zeroizing::new(pem))
        .and_then(|private| private.record())
        .with_context(|| format!("private key {}", key.key_file.display()))?;
    let published = key.record.as_deref().and_then(DkimRecord::parse);
    if !published.is_some_and(|published| published.same_key(&record)) {
        bail!(
            "private key {} does not match the record rotor published for {} {}: it was replaced; refusing to give it to any signer",
            key.key_file.display(),
            key.domain,
            key.selector
        );
    }
    Ok(())
}
