//! Switching the signers, for many domains at once: the key files staged on every signer of
//! each domain, then each signer switched once for all its domains of the pass (one rewrite of
//! its tables, one reload, one probe), old files deleted once all have switched; and a key's
//! retirement reaching signers that left.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use rotor_common::ErrorKind;
use rotor_signers::{Signer, SignerKey, SignerPlan};
use rotor_state::{Action, KeyRecord, ProbeResult};
use zeroize::Zeroizing;

use super::{Engine, failure};
use crate::config::DomainConfig;
use crate::keys::{DkimRecord, PrivateKey};
use crate::plan::{DnsChange, lifecycle};
use crate::{crashpoint, fsutil, signer_plan};
use rotor_common::workers;

/// One domain's step that switches its signers (activate, retire, revoke, roll back), as a
/// batch carries it.
pub(super) struct SignerStep<'d> {
    /// The domain.
    pub domain: &'d DomainConfig,
    /// The key that acts, as stored (its intent recorded).
    pub key: KeyRecord,
    /// What it does.
    pub action: Action,
    /// The exact DNS changes of the step (a retirement's).
    pub dns: Vec<DnsChange>,
    /// The domain's keys as stored before the step, and as they are after it.
    before: Vec<KeyRecord>,
    after: Vec<KeyRecord>,
    /// What the signers should hold after the step, and what they held before.
    plan: SignerPlan,
    previous: SignerPlan,
    /// Each signer's probe of this domain (when it was the one probed).
    probes: BTreeMap<String, ProbeResult>,
    /// Each signer that failed, with the kind and the error.
    failed: BTreeMap<String, (ErrorKind, String)>,
}

impl SignerStep<'_> {
    /// Whether the switch is proven by the signers' probes (a switch to a new key).
    fn proves(&self) -> bool {
        matches!(self.action, Action::Activate | Action::Rollback)
    }

    /// The key as stored, with where each of its domain's signers stands after a switch in
    /// which some failed, and the probes.
    fn noted_failure(&self) -> KeyRecord {
        let mut noted = self.key.clone();
        Engine::note_probes(&mut noted, &self.probes);
        let done = if self.plan.removed.is_empty() {
            "signing"
        } else {
            "removed"
        };
        for name in &self.domain.signers {
            let state = match self.failed.get(name) {
                Some((_, err)) => format!("failed, kept its previous keys: {err}"),
                None => done.to_string(),
            };
            noted.signers.insert(name.clone(), state);
        }
        noted
    }
}

impl Engine<'_> {
    /// Takes `steps` (each domain's step that switches its signers: at most one per domain)
    /// together: their intents in one commit; per domain the records after the step, the
    /// recheck before an activation and the key files staged on every signer; then each signer
    /// switched once for all its domains, and probed once (a switch to a new key); then per
    /// domain the retirement's DNS change, and the results in one commit. A signer that fails
    /// (or whose probe fails) is restored by its adapter, or switched back, for all its domains;
    /// the other signers keep their new state (every key they may sign with is still published),
    /// the keys record where each signer stands, and the next run tries again. Returns each
    /// domain that failed, with its error.
    pub(super) async fn switch_steps(
        &self,
        steps: Vec<(&DomainConfig, KeyRecord, Action, Vec<DnsChange>)>,
    ) -> Vec<(String, anyhow::Error)> {
        let mut failed: Vec<(KeyRecord, Action, anyhow::Error)> = Vec::new();
        let mut steps = self.prepare(steps, &mut failed).await;
        let actions: BTreeSet<&str> = steps.iter().map(|s| s.action.id()).collect();
        if !steps.is_empty() {
            for action in &actions {
                crashpoint::hit(action, "staged");
            }
            self.switch_each_signer(&mut steps).await;
        }
        let (switched, refused): (Vec<_>, Vec<_>) =
            steps.into_iter().partition(|s| s.failed.is_empty());
        let mut noted = Vec::new();
        for step in refused {
            let kind = step.failed.values().map(|(kind, _)| *kind).max();
            let message: Vec<String> = step
                .failed
                .iter()
                .map(|(name, (_, err))| format!("signer {name}: {err}"))
                .collect();
            let err = failure::Kinded {
                kind: kind.unwrap_or(ErrorKind::NeedsOperator),
                message: message.join("; "),
            };
            noted.push(step.noted_failure());
            failed.push((step.key, step.action, err.into()));
        }
        if !switched.is_empty() {
            for action in &actions {
                crashpoint::hit(action, "switched");
            }
        }
        let mut done = Vec::new();
        let bar = self.progress.stage("domains switched", switched.len());
        for mut step in switched {
            match self.finish(&mut step).await {
                Ok(detail) => done.push((step, detail)),
                Err(err) => failed.push((step.key, step.action, err)),
            }
            bar.inc(1);
        }
        bar.finish();
        for action in done
            .iter()
            .map(|(s, _)| s.action.id())
            .collect::<BTreeSet<_>>()
        {
            crashpoint::hit(action, "applied");
        }
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for (step, detail) in &done {
            let (c, e) = self.changes(&step.before, &step.key, &step.after, detail);
            changes.extend(c);
            events.extend(e);
        }
        let mut report = Vec::new();
        if let Err(err) = self.commit_all(&changes, &events) {
            let err = anyhow::Error::from(err);
            report.extend(
                done.iter()
                    .map(|(s, _)| (s.domain.name.to_string(), failure::copy(&err))),
            );
        }
        report.extend(self.record_errors(failed, noted));
        report
    }

    /// The records after each step, the recheck before an activation (for all domains at
    /// once), the signer plans, and the key files staged. Steps that fail go to `failed`.
    async fn prepare<'d>(
        &self,
        steps: Vec<(&'d DomainConfig, KeyRecord, Action, Vec<DnsChange>)>,
        failed: &mut Vec<(KeyRecord, Action, anyhow::Error)>,
    ) -> Vec<SignerStep<'d>> {
        let mut live = Vec::new();
        for (domain, key, action, dns) in steps {
            if key.compromised.is_some() && matches!(action, Action::Activate | Action::Rollback) {
                let verb = match action {
                    Action::Activate => "activated",
                    _ => "rolled back to",
                };
                failed.push((
                    key,
                    action,
                    anyhow::anyhow!("a key reported compromised is never {verb}"),
                ));
                continue;
            }
            live.push((domain, key, action, dns));
        }
        // Every intent in one commit, before any side effect.
        let intended: Vec<KeyRecord> = live
            .iter()
            .map(|(_, key, action, _)| KeyRecord {
                intent: Some(*action),
                ..key.clone()
            })
            .collect();
        let changes: Vec<(Option<&KeyRecord>, &KeyRecord)> = live
            .iter()
            .zip(&intended)
            .filter(|((_, key, action, _), _)| key.intent != Some(*action))
            .map(|((_, key, ..), intended)| (Some(key), intended))
            .collect();
        if let Err(err) = self.store.commit(&changes, &[]) {
            let err = anyhow::Error::from(err);
            for (_, key, action, _) in live {
                failed.push((key, action, failure::copy(&err)));
            }
            return Vec::new();
        }
        for action in live.iter().map(|s| s.2.id()).collect::<BTreeSet<_>>() {
            crashpoint::hit(action, "started");
        }
        let now = self.clock.now();
        let mut prepared = Vec::new();
        for ((domain, _, action, dns), key) in live.into_iter().zip(intended) {
            let before = match self.store.domain_keys(&key.domain) {
                Ok(keys) => keys,
                Err(err) => {
                    failed.push((key, action, err.into()));
                    continue;
                }
            };
            let after = lifecycle::complete(&before, &key, action, now);
            prepared.push((domain, key, action, dns, before, after));
        }
        // The rechecks ask DNS servers: all domains at once, a few at a time.
        let rechecked: Vec<_> =
            futures_util::StreamExt::collect(futures_util::StreamExt::buffered(
                futures_util::stream::iter(prepared.into_iter().map(
                    |(domain, key, action, dns, before, mut after)| async move {
                        let checked = match action {
                            Action::Activate => {
                                self.recheck_before_activation(domain, &before, &mut after)
                                    .await
                            }
                            _ => Ok(()),
                        };
                        (checked, (domain, key, action, dns, before, after))
                    },
                )),
                super::PARALLEL_CHECKS,
            ))
            .await;
        // Each key file staged is a file created and flushed: many at once, not one by one.
        let signers = &self.parts.signers;
        let staged = workers::map(
            &rechecked,
            workers::threads(workers::DISK_EXTRA),
            |(checked, step)| {
                let (domain, key, action, _, before, after) = step;
                match checked {
                    Ok(()) => stage(signers, domain, key, *action, before, after),
                    Err(err) => Err(failure::copy(err)),
                }
            },
        );
        let mut steps = Vec::new();
        for ((_, (domain, key, action, dns, before, after)), staged) in
            rechecked.into_iter().zip(staged)
        {
            match staged {
                Ok((plan, previous)) => steps.push(SignerStep {
                    domain,
                    key,
                    action,
                    dns,
                    before,
                    after,
                    plan,
                    previous,
                    probes: BTreeMap::new(),
                    failed: BTreeMap::new(),
                }),
                Err(err) => failed.push((key, action, err)),
            }
        }
        steps
    }

    /// Switches each signer once for all the steps' domains it signs, and probes it once when
    /// any of them switches to a new key; a signer whose probe fails is switched back to every
    /// domain's previous plan. Each step records its signers' failures and probes.
    async fn switch_each_signer(&self, steps: &mut [SignerStep<'_>]) {
        let mut by_signer: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, step) in steps.iter().enumerate() {
            for name in &step.domain.signers {
                by_signer.entry(name.as_str()).or_default().push(index);
            }
        }
        for (name, indexes) in by_signer {
            let signer = self.parts.signers[name].as_ref();
            let plans: Vec<SignerPlan> = indexes.iter().map(|&i| steps[i].plan.clone()).collect();
            let mut outcome = signer
                .switch(&plans)
                .map_err(|err| (err.kind(), format!("{err:#}")));
            // One probe proves the reload: the last domain written that switches to a new key.
            let probed = indexes.iter().rev().copied().find(|&i| steps[i].proves());
            if let (Ok(()), Some(probed)) = (&outcome, probed) {
                let previous: Vec<SignerPlan> =
                    indexes.iter().map(|&i| steps[i].previous.clone()).collect();
                let step = &steps[probed];
                let (result, proven) = self
                    .prove_or_switch_back(name, signer, &step.plan, &step.after, &previous)
                    .await;
                if let Some(result) = result {
                    steps[probed].probes.insert(name.to_string(), result);
                }
                outcome = proven;
            }
            if let Err((kind, err)) = outcome {
                tracing::warn!("signer {name}: {err}");
                for &i in &indexes {
                    steps[i]
                        .failed
                        .insert(name.to_string(), (kind, err.clone()));
                }
            }
        }
    }

    /// After every signer of the step's domain switched: the probes noted, old key files
    /// deleted, each key's signers recorded, then what the action does besides (a retirement's
    /// DNS change and the private key destroyed). The detail of its history event.
    async fn finish(&self, step: &mut SignerStep<'_>) -> Result<String> {
        let (domain, key, plan) = (step.domain, &step.key, &step.plan);
        // The probe proved every key the signers now sign with (RSA and Ed25519 together).
        for signing in step.after.iter_mut().filter(|k| holds(&plan.signing, k)) {
            Self::note_probes(signing, &step.probes);
        }
        let context = || format!("{} {}: {}", domain.name, key.selector, step.action);
        for name in &domain.signers {
            self.parts.signers[name]
                .clean(plan)
                .with_context(|| format!("signer {name}: deleting old key files"))
                .with_context(context)?;
        }
        let leaving: Vec<&KeyRecord> = step
            .after
            .iter()
            .filter(|k| holds(&plan.removed, k))
            .collect();
        self.clean_departed(domain, &leaving)
            .with_context(context)?;
        // Every key records which signers hold it, so that its retirement reaches each of them,
        // even one taken out of the domain's `signers:` since.
        for record in step.after.iter_mut() {
            let state = if holds(&plan.removed, record) {
                "removed"
            } else if holds(&plan.signing, record) {
                "signing"
            } else if holds(&plan.kept, record) {
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
        self.after_switch(step).await.with_context(context)
    }

    /// What each action does once the signers switched; the detail of its history event.
    async fn after_switch(&self, step: &SignerStep<'_>) -> Result<String> {
        let (domain, key) = (step.domain, &step.key);
        let signers = domain.signers.join(", ");
        Ok(match step.action {
            Action::Activate => format!("signers {signers} now sign with {}", key.selector),
            Action::Retire | Action::Revoke => {
                // A leaked key may be revoked before it was ever published: then no change.
                if !step.dns.is_empty() {
                    let zone = self.key_zone(domain, key).await?;
                    crashpoint::hit(step.action.id(), "signers_done");
                    self.replace_exact(domain, &zone, &step.dns).await?;
                    crashpoint::hit(step.action.id(), "dns_done");
                }
                fsutil::remove_file(&key.key_file)?;
                let now = self.clock.now();
                let unproven = domain
                    .policy
                    .monitor
                    .as_ref()
                    .is_some_and(|m| now >= key.since + m.max_wait.secs());
                let unproven = if unproven {
                    " (monitor.max_wait reached: DMARC reports never showed its selector silent)"
                } else {
                    ""
                };
                let record = match step.action {
                    Action::Revoke => "record replaced by an empty p=",
                    _ => "record removed",
                };
                format!("taken out of the signers; {record}; private key destroyed{unproven}")
            }
            Action::Rollback => {
                let restored = step
                    .after
                    .iter()
                    .find(|k| k.phase == rotor_state::Phase::Active && k.selector != key.selector)
                    .map_or_else(|| "the previous key".to_string(), |k| k.selector.clone());
                let days = self.days(domain);
                let why =
                    crate::plan::evidence::failing(key, &domain.policy, &days, self.clock.now())
                        .unwrap_or_else(|| "DMARC reports showed it failing".into());
                format!("rolled back: signers {signers} sign with {restored} again; {why}")
            }
            other => bail!("{other} does not switch signers (this is a bug)"),
        })
    }

    /// Records each failed step's error on its key (with where each signer stands, from
    /// `noted`), all in one commit; the domains and their errors.
    fn record_errors(
        &self,
        failed: Vec<(KeyRecord, Action, anyhow::Error)>,
        noted: Vec<KeyRecord>,
    ) -> Vec<(String, anyhow::Error)> {
        let mut changes = Vec::new();
        let mut report = Vec::new();
        for (key, action, err) in failed {
            let err = err.context(format!("{} {}: {}", key.domain, key.selector, action));
            match self.key(&key) {
                Ok(current) => {
                    let base = noted
                        .iter()
                        .find(|n| n.domain == key.domain && n.selector == key.selector)
                        .cloned()
                        .unwrap_or_else(|| current.clone());
                    let recorded = KeyRecord {
                        error: Some(format!("{err:#}")),
                        error_kind: Some(failure::kind_of(&err)),
                        ..base
                    };
                    changes.push((current, recorded));
                }
                Err(store) => {
                    tracing::error!("{}: cannot record the error: {store:#}", key.domain)
                }
            }
            report.push((key.domain.clone(), err));
        }
        let refs: Vec<(Option<&KeyRecord>, &KeyRecord)> =
            changes.iter().map(|(old, new)| (Some(old), new)).collect();
        if let Err(err) = self.store.commit(&refs, &[]) {
            tracing::error!(
                "cannot record the errors of {} domains: {err:#}",
                refs.len()
            );
        }
        report
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
                .switch(std::slice::from_ref(&plan))
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

/// Whether `keys` hold `key`'s selector.
fn holds(keys: &[SignerKey], key: &KeyRecord) -> bool {
    keys.iter().any(|k| k.selector == key.selector)
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

/// The plan of `key`'s step and the signers' plan before it, every key the signers will
/// hold checked against its record, and the key files placed on every signer of `domain`.
fn stage(
    signers: &BTreeMap<String, Box<dyn Signer>>,
    domain: &DomainConfig,
    key: &KeyRecord,
    action: Action,
    before: &[KeyRecord],
    after: &[KeyRecord],
) -> Result<(SignerPlan, SignerPlan)> {
    let removed: Vec<&KeyRecord> = match action {
        Action::Retire | Action::Revoke => vec![key],
        _ => Vec::new(),
    };
    let plan = signer_plan::from_keys(domain.name.as_str(), after, &removed);
    for held in after
        .iter()
        .filter(|k| holds(&plan.signing, k) || holds(&plan.kept, k))
    {
        matches_its_record(held)?;
    }
    for name in &domain.signers {
        signers[name]
            .stage(&plan)
            .with_context(|| format!("signer {name}: placing the key files"))?;
    }
    let previous = signer_plan::from_keys(domain.name.as_str(), before, &[]);
    Ok((plan, previous))
}
