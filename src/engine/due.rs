//! Which domains a pass plans: those the store's index says are due (and the forced ones), or
//! every domain when the index cannot tell; and, once the pass is over, when each domain it
//! planned next needs one (see `rotor_state`'s `due.rs` for the index itself).

use std::collections::BTreeSet;

use rotor_state::{KeyRecord, Phase, ProbeResult};

use super::Engine;
use crate::config::DomainConfig;

/// When a signer last probed at `last` should be probed again, every `every` seconds: at once
/// when it never was, or when the clock is behind its last probe.
pub(super) fn probe_due(last: Option<&ProbeResult>, every: u64, now: u64) -> u64 {
    match last {
        Some(last) if last.at <= now => last.at.saturating_add(every.max(1)),
        _ => now,
    }
}

impl Engine<'_> {
    /// The domains this pass plans, and whether they are every domain of the config. Every
    /// domain also when the clock is behind the last pass: the index's times were read off
    /// that clock.
    pub(super) fn due_domains(&self, forced: &BTreeSet<String>) -> (Vec<&DomainConfig>, bool) {
        let now = self.clock.now();
        let every = || (self.config.domains.iter().collect(), true);
        if self.last_pass.is_some_and(|last| now < last.at) {
            return every();
        }
        match self.store.due(&self.config.fingerprint, now) {
            Ok(Some(due)) => {
                let planned = self
                    .config
                    .domains
                    .iter()
                    .filter(|d| due.contains(d.name.as_str()) || forced.contains(d.name.as_str()))
                    .collect();
                (planned, false)
            }
            Ok(None) => every(),
            Err(err) => {
                self.warn(format!(
                    "the store's index of due domains: {err}; every domain is planned"
                ));
                every()
            }
        }
    }

    /// Records when each of `domains`, planned in this pass, next needs a pass: the earliest
    /// of its plan's gates and its signers' next probes, and at the latest after
    /// `passes.recheck_every`. `every`: these are all the config's domains.
    pub(super) fn schedule(&self, domains: &[&DomainConfig], every: bool) {
        let now = self.clock.now();
        let latest = now.saturating_add(self.config.passes.recheck_every.secs().max(1));
        let due: Vec<(&str, u64)> = domains
            .iter()
            .map(|domain| {
                let at = match self.store.domain_keys(domain.name.as_str()) {
                    Ok(keys) => self.next_due(domain, &keys, now).min(latest),
                    Err(_) => now,
                };
                (domain.name.as_str(), at)
            })
            .collect();
        if let Err(err) = self.store.set_due(&self.config.fingerprint, &due, every) {
            self.warn(format!(
                "the store's index of due domains: {err}; the next pass plans every domain"
            ));
        }
    }

    /// When `domain`, whose stored keys are `keys`, next has something to do.
    fn next_due(&self, domain: &DomainConfig, keys: &[KeyRecord], now: u64) -> u64 {
        let plan = self.plan_of(domain, keys).due(now).unwrap_or(u64::MAX);
        let Some(active) = keys.iter().find(|k| k.phase == Phase::Active) else {
            return plan;
        };
        let every = domain.policy.probe_every.secs();
        domain
            .signers
            .iter()
            .filter(|name| {
                self.parts
                    .signers
                    .get(*name)
                    .is_some_and(|signer| signer.probe().is_some())
            })
            .map(|name| probe_due(active.probes.get(name), every, now))
            .fold(plan, u64::min)
    }
}
