//! Propagation: asking every server whether a key's record is visible, before it is marked
//! propagated and again before it is activated.

use anyhow::{Context, Result};
use futures_util::StreamExt;
use rotor_state::{Action, Check, KeyRecord, Phase};

use super::{Engine, failure, this};
use crate::config::DomainConfig;
use crate::keys::DkimRecord;
use crate::plan::lifecycle;
use crate::propagation::RecordNames;

impl Engine<'_> {
    /// Before a switch: every key about to be activated whose last propagation check is older
    /// than `poll_every` is checked again on every server, so that a record removed (or
    /// changed) meanwhile, e.g. while the activation window was closed, is never activated.
    pub(super) async fn recheck_before_activation(
        &self,
        domain: &DomainConfig,
        before: &[KeyRecord],
        after: &mut [KeyRecord],
    ) -> Result<()> {
        let now = self.clock.now();
        let poll = domain.policy.propagation.poll_every.secs();
        for (old, new) in before.iter().zip(after.iter_mut()) {
            let activating = old.phase == Phase::Propagated && new.phase == Phase::Active;
            let fresh = old.last_check.as_ref().is_some_and(|c| now < c.at + poll);
            if !activating || fresh {
                continue;
            }
            let check = self.visible(domain, old).await?;
            if !check.passed() {
                let missing: Vec<String> = check
                    .servers
                    .iter()
                    .filter(|s| !s.ok)
                    .map(|s| format!("{} {}: {}", s.role, s.server, s.detail))
                    .collect();
                return Err(failure::transient(format!(
                    "{} is no longer visible everywhere ({}); not activated",
                    old.selector,
                    missing.join("; ")
                )));
            }
            new.last_check = Some(check);
        }
        Ok(())
    }

    /// Asks every server whether `key`'s record is visible (see [`Visibility::check`]).
    pub(super) async fn visible(&self, domain: &DomainConfig, key: &KeyRecord) -> Result<Check> {
        let record = key
            .record
            .as_deref()
            .and_then(DkimRecord::parse)
            .context("a published key has a record")?;
        let zone = key.zone.clone().unwrap_or_else(|| domain.name.to_string());
        let names = RecordNames {
            selector: &key.selector_name(),
            record: &key.record_name(),
            zone: &zone,
        };
        let check = self.parts.visibility.check(
            names,
            &record,
            &domain.policy.propagation,
            self.clock.now(),
        );
        Ok(check.await)
    }

    /// Checks the record of each step's key on every server, a few domains at a time, and
    /// stores all the results in one commit: a key visible everywhere moves on (propagated, or
    /// abandoned past its timeout as the plan says), the others keep the check for `status`.
    /// Returns each domain whose check failed, with its error (recorded on its key).
    pub(super) async fn check_propagation_all(
        &self,
        steps: Vec<(&DomainConfig, KeyRecord)>,
    ) -> Vec<(String, anyhow::Error)> {
        let checked: Vec<_> = futures_util::stream::iter(steps)
            .map(|(domain, key)| async move {
                let check = self.visible(domain, &key).await;
                (domain, key, check)
            })
            .buffer_unordered(super::PARALLEL_CHECKS)
            .collect()
            .await;
        let now = self.clock.now();
        let mut failed = Vec::new();
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for (domain, key, check) in checked {
            let keys =
                match check.and_then(|check| Ok((check, self.store.domain_keys(&key.domain)?))) {
                    Ok((check, keys)) => (check, keys),
                    Err(err) => {
                        failed.push((domain, key, err));
                        continue;
                    }
                };
            let (check, keys) = keys;
            let summary: Vec<String> = check
                .servers
                .iter()
                .map(|s| format!("{} {}: {}", s.role, s.server, s.detail))
                .collect();
            if check.passed() {
                let mut after = lifecycle::complete(&keys, &key, Action::CheckPropagation, now);
                this(&mut after, &key).last_check = Some(check);
                let detail = format!("visible everywhere: {}", summary.join("; "));
                let (c, e) = self.changes(&keys, &key, &after, &detail);
                changes.extend(c);
                events.extend(e);
            } else {
                tracing::info!(
                    "{} {}: not visible everywhere yet: {}",
                    key.domain,
                    key.selector,
                    summary.join("; ")
                );
                let waiting = KeyRecord {
                    last_check: Some(check),
                    error: None,
                    ..key.clone()
                };
                changes.push((key, waiting));
            }
        }
        let mut report = Vec::new();
        if let Err(err) = self.commit_all(&changes, &events) {
            let err = anyhow::Error::from(err);
            report.extend(
                changes
                    .iter()
                    .map(|(old, _)| (old.domain.clone(), failure::copy(&err))),
            );
        }
        for (domain, key, err) in failed {
            let err = err.context(format!(
                "{} {}: {}",
                domain.name,
                key.selector,
                Action::CheckPropagation
            ));
            if let Err(store) = self.record_error(&key, &err) {
                tracing::error!("{}: cannot record the error: {store:#}", domain.name);
            }
            report.push((domain.name.to_string(), err));
        }
        report
    }
}
