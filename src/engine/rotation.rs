//! Starting rotations: a selector is reserved for every key that is due, checking the names
//! against the provider once per zone however many domains it holds.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow};
use rotor_providers::Zone;
use rotor_state::KeyRecord;

use super::{Engine, rfc3339};
use crate::config::DomainConfig;
use crate::keys::KeyAlgorithm;
use crate::lifecycle::{self, Next};

/// A key to start: its domain, algorithm and proposed selector.
struct Proposal<'d> {
    domain: &'d DomainConfig,
    algorithm: KeyAlgorithm,
    base: String,
    selector: String,
}

/// How many times a taken name is replaced before giving up.
const ROUNDS: usize = 8;

impl Engine<'_> {
    /// Reserves a selector for every key of `domains` that is due (or forced): never one rotor
    /// used before, never a name that already holds a TXT record. Returns the domains that
    /// failed, with why.
    pub(super) async fn start_rotations(
        &self,
        domains: &[&DomainConfig],
        forced: &BTreeSet<String>,
    ) -> Vec<(String, anyhow::Error)> {
        let now = self.clock.now();
        let mut failures = Vec::new();
        let mut groups: BTreeMap<(String, String), (Zone, Vec<Proposal>)> = BTreeMap::new();
        let mut taken: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for &domain in domains {
            let name = domain.name.as_str();
            let proposals = match self.proposals(domain, forced.contains(name), now, &mut taken) {
                Ok(proposals) if proposals.is_empty() => continue,
                Ok(proposals) => proposals,
                Err(err) => {
                    failures.push((name.to_string(), err));
                    continue;
                }
            };
            match self.zone(domain, &format!("_domainkey.{name}")).await {
                Ok(zone) => {
                    let group = (domain.provider.clone(), zone.name.clone());
                    groups
                        .entry(group)
                        .or_insert_with(|| (zone, Vec::new()))
                        .1
                        .extend(proposals);
                }
                Err(err) => failures.push((name.to_string(), err)),
            }
        }
        for (zone, proposals) in groups.into_values() {
            let domains: BTreeSet<String> = proposals
                .iter()
                .map(|p| p.domain.name.to_string())
                .collect();
            if let Err(err) = self.reserve(&zone, proposals, &mut taken, now).await {
                let message = format!("{err:#}");
                failures.extend(domains.into_iter().map(|d| (d, anyhow!("{message}"))));
            }
        }
        failures
    }

    /// The keys `domain` should start now, with a first selector each.
    fn proposals<'d>(
        &self,
        domain: &'d DomainConfig,
        forced: bool,
        now: u64,
        taken: &mut BTreeMap<String, BTreeSet<String>>,
    ) -> Result<Vec<Proposal<'d>>> {
        let name = domain.name.as_str();
        let keys = self.store.domain_keys(name)?;
        let taken = taken
            .entry(name.to_string())
            .or_insert_with(|| keys.iter().map(|k| k.selector.clone()).collect());
        let mut proposals = Vec::new();
        for &algorithm in &domain.policy.keys {
            if let Next::Act(_) = lifecycle::rotation(&keys, algorithm, &domain.policy, now, forced)
            {
                let base = domain.policy.selector.render(&rfc3339(now), algorithm);
                let selector = lifecycle::choose_selector(&base, taken);
                taken.insert(selector.clone());
                proposals.push(Proposal {
                    domain,
                    algorithm,
                    base,
                    selector,
                });
            }
        }
        Ok(proposals)
    }

    /// Checks the proposed names in `zone` (replacing those that hold a TXT record rotor did
    /// not create) and reserves them all in one commit.
    async fn reserve(
        &self,
        zone: &Zone,
        mut proposals: Vec<Proposal<'_>>,
        taken: &mut BTreeMap<String, BTreeSet<String>>,
        now: u64,
    ) -> Result<()> {
        let provider = self.provider(proposals[0].domain);
        let mut unchecked: Vec<usize> = (0..proposals.len()).collect();
        for _ in 0..ROUNDS {
            if unchecked.is_empty() {
                break;
            }
            let names: Vec<String> = unchecked
                .iter()
                .map(|&i| record_name(&proposals[i]))
                .collect();
            let found = provider.list_txt_many(zone, &names).await?;
            unchecked.retain(|&i| {
                found
                    .get(&record_name(&proposals[i]))
                    .is_some_and(|values| !values.is_empty())
            });
            for &i in &unchecked {
                let proposal = &mut proposals[i];
                let domain = proposal.domain.name.to_string();
                tracing::info!(
                    "{domain}: selector {} already has a TXT record rotor did not create; skipping it",
                    proposal.selector
                );
                let taken = taken.entry(domain).or_default();
                proposal.selector = lifecycle::choose_selector(&proposal.base, taken);
                taken.insert(proposal.selector.clone());
            }
        }
        if !unchecked.is_empty() {
            return Err(anyhow!(
                "no free selector found after {ROUNDS} tries in zone {}",
                zone.name
            ));
        }
        let keys: Vec<KeyRecord> = proposals
            .iter()
            .map(|p| {
                let name = p.domain.name.as_str();
                let key_file = self.key_file(name, &p.selector);
                KeyRecord {
                    zone: Some(zone.name.clone()),
                    zone_id: zone.id.clone(),
                    ..KeyRecord::reserved(
                        name,
                        &p.selector,
                        &p.algorithm.to_string(),
                        key_file,
                        now,
                    )
                }
            })
            .collect();
        let events: Vec<_> = proposals
            .iter()
            .zip(&keys)
            .map(|(p, key)| {
                self.event(
                    key,
                    format!(
                        "rotation started: new {} key under selector {}",
                        p.algorithm, p.selector
                    ),
                )
            })
            .collect();
        let changes: Vec<_> = keys.iter().map(|key| (None, key)).collect();
        self.store.commit(&changes, &events)?;
        for key in &keys {
            tracing::info!(
                "{}: rotation started ({}, selector {})",
                key.domain,
                key.algorithm,
                key.selector
            );
        }
        Ok(())
    }
}

fn record_name(proposal: &Proposal) -> String {
    format!("{}._domainkey.{}", proposal.selector, proposal.domain.name)
}
