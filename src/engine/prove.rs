//! Proving a switch: each signer with a `probe:` signs a probe message, which rotor verifies
//! against the records of the keys it should sign with. A signer that still signs with the
//! previous key (a reload that did nothing, maps re-read later) is probed again every second
//! for its `probe.wait`; one that does not come round counts as a failed switch.

use std::collections::BTreeMap;
use std::time::Duration;

use rotor_common::ErrorKind;
use rotor_signers::probe::{ProbeMessage, ProbeSettings};
use rotor_signers::{Signer, SignerPlan};
use rotor_state::{KeyRecord, Phase, ProbeResult};

use super::Engine;
use super::due::probe_due;
use crate::config::DomainConfig;
use crate::probe::{self, Expected, ProbeFailure};
use crate::signer_plan;

/// How often a probe is repeated while a signer may still be switching.
const RETRY: Duration = Duration::from_secs(1);

/// A probe that failed: what it said, and whether the next pass may see it pass.
pub(super) struct Disproved {
    /// What the probe found.
    pub detail: String,
    /// The kind of failure.
    pub kind: ErrorKind,
}

impl Engine<'_> {
    /// Probes `signer` (named `name`) of `domain`, which should sign with `plan.signing`
    /// (whose records `keys` hold). `None`: the signer has no probe.
    pub(super) async fn prove(
        &self,
        name: &str,
        signer: &dyn Signer,
        plan: &SignerPlan,
        keys: &[KeyRecord],
    ) -> Option<Result<ProbeResult, Disproved>> {
        let settings = signer.probe()?;
        Some(self.probe_until(name, settings, plan, keys).await)
    }

    /// [`Engine::prove`] for a signer just switched to `plan` (with other domains); when its
    /// probe fails, every domain it switched is switched back to its plan in `previous`. The
    /// probe's result (if it has a probe) and the switch's outcome: an error with its kind and
    /// what the probe found.
    pub(super) async fn prove_or_switch_back(
        &self,
        name: &str,
        signer: &dyn Signer,
        plan: &SignerPlan,
        keys: &[KeyRecord],
        previous: &[SignerPlan],
    ) -> (Option<ProbeResult>, Result<(), (ErrorKind, String)>) {
        let disproved = match self.prove(name, signer, plan, keys).await {
            None => return (None, Ok(())),
            Some(Ok(result)) => return (Some(result), Ok(())),
            Some(Err(disproved)) => disproved,
        };
        let result = ProbeResult {
            at: self.clock.now(),
            ok: false,
            detail: disproved.detail.clone(),
        };
        let back = previous
            .iter()
            .try_for_each(|plan| signer.stage(plan))
            .and_then(|()| signer.switch(previous));
        let detail = match back {
            Ok(()) => format!(
                "{}; it was switched back to its previous keys",
                disproved.detail
            ),
            Err(err) => format!(
                "{}; switching it back to its previous keys failed too: {err:#}",
                disproved.detail
            ),
        };
        (Some(result), Err((disproved.kind, detail)))
    }

    async fn probe_until(
        &self,
        name: &str,
        settings: &ProbeSettings,
        plan: &SignerPlan,
        keys: &[KeyRecord],
    ) -> Result<ProbeResult, Disproved> {
        let disproved = |detail: String, kind| Disproved { detail, kind };
        let probe = settings
            .probe()
            .map_err(|err| disproved(err, ErrorKind::NeedsOperator))?;
        let records: Vec<(String, String)> = plan
            .signing
            .iter()
            .filter_map(|signing| {
                let key = keys.iter().find(|k| k.selector == signing.selector)?;
                Some((signing.selector.clone(), key.record.clone()?))
            })
            .collect();
        let expected: Vec<Expected<'_>> = records
            .iter()
            .map(|(selector, record)| Expected { selector, record })
            .collect();
        let selectors: Vec<&str> = expected.iter().map(|e| e.selector).collect();
        let deadline = tokio::time::Instant::now() + settings.wait();
        loop {
            let now = self.clock.now();
            let message = ProbeMessage::new(
                &plan.domain,
                &format!("{}.{now}", selectors.join("+")),
                &crate::time::rfc2822(now),
            );
            let failure = match probe.sign(&message, settings.timeout()).await {
                Ok(signed) => match probe::verify(&signed, &plan.domain, &expected).await {
                    Ok(()) => {
                        return Ok(ProbeResult {
                            at: now,
                            ok: true,
                            detail: format!(
                                "{} signed the probe with s={}; the signature is valid",
                                probe.describe(),
                                selectors.join(" and s=")
                            ),
                        });
                    }
                    Err(failure) => {
                        // A signer that has not picked up its new tables yet signs as before.
                        let settling = matches!(
                            failure,
                            ProbeFailure::WrongSelector { .. } | ProbeFailure::Unsigned
                        );
                        (failure.to_string(), ErrorKind::NeedsOperator, settling)
                    }
                },
                Err(err) => {
                    let kind = err.kind();
                    (err.to_string(), kind, kind == ErrorKind::Transient)
                }
            };
            let (detail, kind, settling) = failure;
            if !settling || tokio::time::Instant::now() + RETRY > deadline {
                return Err(disproved(detail, kind));
            }
            tracing::debug!("signer {name}: probe not yet signed as expected: {detail}");
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Records `results` (by signer) on `key`, for `status` and the next pass.
    pub(super) fn note_probes(key: &mut KeyRecord, results: &BTreeMap<String, ProbeResult>) {
        for (name, result) in results {
            key.probes.insert(name.clone(), result.clone());
        }
    }
}

impl Engine<'_> {
    /// Probes, again, every signer of `domain` that has a probe and signs with its active keys,
    /// when its last probe is older than `probe_every`: a signer that went back to an old key or
    /// lost its tables is found. A probe that starts failing (or passes again) is an event, so
    /// it is notified once; a failing one warns on every pass.
    pub(super) async fn reprobe(&self, domain: &DomainConfig) -> anyhow::Result<()> {
        let keys = self.store.domain_keys(domain.name.as_str())?;
        let active: Vec<&KeyRecord> = keys.iter().filter(|k| k.phase == Phase::Active).collect();
        let Some(first) = active.first() else {
            return Ok(());
        };
        let now = self.clock.now();
        let every = domain.policy.probe_every.secs();
        let plan = signer_plan::from_keys(domain.name.as_str(), &keys, &[]);
        let mut results = BTreeMap::new();
        for name in &domain.signers {
            if probe_due(first.probes.get(name), every, now) > now {
                continue;
            }
            let signer = self.parts.signers[name].as_ref();
            let result = match self.prove(name, signer, &plan, &keys).await {
                None => continue,
                Some(Ok(result)) => result,
                Some(Err(disproved)) => ProbeResult {
                    at: now,
                    ok: false,
                    detail: disproved.detail,
                },
            };
            if !result.ok {
                self.warn(format!(
                    "{} {}: signer {name} no longer signs as rotor set it: {}",
                    domain.name, first.selector, result.detail
                ));
            }
            results.insert(name.clone(), result);
        }
        if results.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::new();
        let mut updated = Vec::new();
        let mut events = Vec::new();
        for key in &active {
            let mut new = (*key).clone();
            for (name, result) in &results {
                let changed = key.probes.get(name).is_none_or(|last| last.ok != result.ok);
                if changed && (!result.ok || key.probes.contains_key(name)) {
                    let detail = match result.ok {
                        true => format!("signer {name} signs with {} again", key.selector),
                        false => format!("signer {name}'s probe failed: {}", result.detail),
                    };
                    events.push(self.event(key, detail));
                }
                new.probes.insert(name.clone(), result.clone());
            }
            updated.push(new);
        }
        for (old, new) in active.iter().zip(&updated) {
            changes.push((Some(*old), new));
        }
        self.store.commit(&changes, &events)?;
        Ok(())
    }
}
