//! Propagation: asking every server whether a key's record is visible, before it is marked
//! propagated and again before it is activated.

use anyhow::{Context, Result};
use rotor_state::{Check, KeyRecord, Phase};

use super::{Engine, failure, this};
use crate::config::DomainConfig;
use crate::keys::DkimRecord;
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

    pub(super) async fn check_propagation(
        &self,
        domain: &DomainConfig,
        key: &KeyRecord,
        keys: &[KeyRecord],
        mut after: Vec<KeyRecord>,
    ) -> Result<()> {
        let check = self.visible(domain, key).await?;
        let summary: Vec<String> = check
            .servers
            .iter()
            .map(|s| format!("{} {}: {}", s.role, s.server, s.detail))
            .collect();
        this(&mut after, key).last_check = Some(check.clone());
        if check.passed() {
            self.commit(
                keys,
                key,
                after,
                format!("visible everywhere: {}", summary.join("; ")),
            )
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
            self.store.commit(&[(Some(key), &waiting)], &[])?;
            Ok(())
        }
    }
}
