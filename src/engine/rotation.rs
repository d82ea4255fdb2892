//! Starting rotations: a selector is reserved for every key that is due, checking the names
//! against the provider once per zone however many domains it holds. A selector's name may be an
//! alias (CNAME, or under a DNAME) into a zone holding the keys; the record is then written at
//! the end of the chain, provided the domain's provider manages that zone.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, bail};
use futures_util::StreamExt;
use rotor_providers::{Zone, dns};
use rotor_state::{KeyRecord, Phase};

use super::{Engine, rfc3339};
use crate::config::DomainConfig;
use crate::keys::KeyAlgorithm;
use crate::plan::{DomainPlan, lifecycle};

/// A key to start: its domain, algorithm, proposed selector and where its record would go.
struct Proposal<'d> {
    domain: &'d DomainConfig,
    algorithm: KeyAlgorithm,
    base: String,
    /// With a selector ring: its free names, best first (empty: names from the template).
    ring: Vec<String>,
    selector: String,
    /// The end of the selector name's alias chain, when it is an alias.
    target: Option<String>,
}

impl Proposal<'_> {
    /// Another name for this key, after its proposed one turned out to be taken.
    fn next_selector(&mut self, taken: &mut BTreeSet<String>) -> Result<()> {
        self.selector = if self.ring.is_empty() {
            lifecycle::choose_selector(&self.base, taken)
        } else {
            self.ring
                .iter()
                .find(|name| !taken.contains(*name))
                .cloned()
                .ok_or_else(|| {
                    anyhow!(
                        "{}: every free selector of the ring is taken ({})",
                        self.domain.name,
                        self.ring.join(", ")
                    )
                })?
        };
        taken.insert(self.selector.clone());
        Ok(())
    }
}

impl Proposal<'_> {
    fn selector_name(&self) -> String {
        rotor_state::selector_name(&self.selector, self.domain.name.as_str())
    }

    /// Where the record would be written.
    fn record_name(&self) -> String {
        self.target.clone().unwrap_or_else(|| self.selector_name())
    }
}

/// How many selector names are looked up at once.
const LOOKUPS: usize = 16;

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
        let mut taken: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut proposed = Vec::new();
        for &domain in domains {
            let name = domain.name.as_str();
            match self.proposals(domain, forced.contains(name), now, &mut taken) {
                Ok(proposals) => proposed.extend(proposals),
                Err(err) => failures.push((name.to_string(), err)),
            }
        }
        let placed: Vec<_> = futures_util::stream::iter(proposed)
            .map(|mut proposal| async move {
                let zone = self.place(&mut proposal).await;
                (proposal, zone)
            })
            .buffer_unordered(LOOKUPS)
            .collect()
            .await;
        let mut groups: BTreeMap<(String, String), (Zone, Vec<Proposal>)> = BTreeMap::new();
        let mut refused = BTreeSet::new();
        for (proposal, zone) in placed {
            let name = proposal.domain.name.to_string();
            match zone {
                Ok(zone) => {
                    let group = (proposal.domain.provider.clone(), zone.name.clone());
                    groups
                        .entry(group)
                        .or_insert_with(|| (zone, Vec::new()))
                        .1
                        .push(proposal);
                }
                Err(err) => {
                    refused.insert(name.clone());
                    failures.push((name, err));
                }
            }
        }
        // A domain starts all its keys or none.
        for (_, proposals) in groups.values_mut() {
            proposals.retain(|p| !refused.contains(p.domain.name.as_str()));
        }
        groups.retain(|_, (_, proposals)| !proposals.is_empty());
        for (zone, proposals) in groups.into_values() {
            let domains: BTreeSet<String> = proposals
                .iter()
                .map(|p| p.domain.name.to_string())
                .collect();
            if let Err(err) = self.reserve(&zone, proposals, &mut taken, now).await {
                let err = &err;
                failures.extend(domains.into_iter().map(|d| (d, super::failure::copy(err))));
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
        let ring = &domain.policy.selector_ring;
        // Template names are never reused; a ring's names are, once their key's life is over.
        let taken = taken.entry(name.to_string()).or_insert_with(|| {
            keys.iter()
                .filter(|k| ring.is_empty() || !k.phase.is_final())
                .map(|k| k.selector.clone())
                .collect()
        });
        let mut proposals = Vec::new();
        let days = self.days(domain);
        let plan = DomainPlan::compute(domain, &keys, &days, self.when(now), forced);
        for rotation in &plan.rotations {
            let algorithm = rotation.algorithm;
            if rotation.step.action().is_some() {
                let stamp = rfc3339(now);
                let names: Vec<String> = ring.iter().map(|t| t.render(&stamp, algorithm)).collect();
                let mut proposal = Proposal {
                    domain,
                    algorithm,
                    base: domain.policy.selector.render(&stamp, algorithm),
                    ring: lifecycle::ring_order(&names, &keys),
                    selector: String::new(),
                    target: None,
                };
                if !names.is_empty() && proposal.ring.is_empty() {
                    return Err(anyhow!(
                        "every selector of the ring ({}) belongs to a key not yet retired; a name is reused once its key is retired",
                        names.join(", ")
                    ));
                }
                proposal.next_selector(taken)?;
                proposals.push(proposal);
            }
        }
        Ok(proposals)
    }

    /// Follows `proposal`'s selector name to where its record would be written, and finds that
    /// name's zone at the domain's provider.
    async fn place(&self, proposal: &mut Proposal<'_>) -> Result<Zone> {
        let domain = proposal.domain;
        let name = proposal.selector_name();
        proposal.target = self
            .parts
            .visibility
            .alias_target(&name, &domain.policy.propagation)
            .await
            .map_err(|err| anyhow!("can't tell whether {name} is an alias: {err}"))?;
        let Some(target) = &proposal.target else {
            return self.zone(domain, &name).await;
        };
        let refuse = |why: String| {
            anyhow!(
                "{name} is an alias of {target}, {why}; rotor writes only in zones its provider \
                 manages: point the alias into a zone provider {} manages, or set the domain's \
                 provider to the one that manages {target}",
                domain.provider
            )
        };
        let zone = self.zone(domain, target).await.map_err(|err| {
            refuse(format!(
                "whose zone provider {} does not manage ({err:#})",
                domain.provider
            ))
        })?;
        if !dns::within(target, &zone.name) {
            return Err(refuse(format!("outside the configured zone {}", zone.name)));
        }
        Ok(zone)
    }

    /// Checks the proposed names in `zone` (replacing those that hold a TXT record rotor did
    /// not create, or that another key's record already uses) and reserves them all in one
    /// commit.
    async fn reserve(
        &self,
        zone: &Zone,
        mut proposals: Vec<Proposal<'_>>,
        taken: &mut BTreeMap<String, BTreeSet<String>>,
        now: u64,
    ) -> Result<()> {
        let provider = self.provider(proposals[0].domain);
        let mut used = self.record_names_in_use()?;
        let mut unchecked: Vec<usize> = (0..proposals.len()).collect();
        for _ in 0..ROUNDS {
            if unchecked.is_empty() {
                break;
            }
            let names: Vec<String> = unchecked
                .iter()
                .map(|&i| proposals[i].record_name())
                .collect();
            let found = provider.list_txt_many(zone, &names).await?;
            unchecked.retain(|&i| {
                let name = proposals[i].record_name();
                let free = !used.contains(&name)
                    && found.get(&name).is_none_or(|values| values.is_empty());
                if free {
                    used.insert(name);
                }
                !free
            });
            for &i in &unchecked {
                let proposal = &mut proposals[i];
                let domain = proposal.domain.name.to_string();
                tracing::info!(
                    "{domain}: {} already holds a TXT record; skipping selector {}",
                    proposal.record_name(),
                    proposal.selector
                );
                proposal.next_selector(taken.entry(domain).or_default())?;
                let placed = self.place(proposal).await?;
                if placed.name != zone.name {
                    bail!(
                        "{} leads to zone {}, not {} like the domain's other selectors",
                        proposal.selector_name(),
                        placed.name,
                        zone.name
                    );
                }
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
                    target: p.target.clone(),
                    ..KeyRecord::reserved(name, &p.selector, p.algorithm, key_file, now)
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
        // A ring's selector replaces the record of its retired (or failed) previous key.
        let mut previous = Vec::new();
        for key in &keys {
            previous.push(
                self.store
                    .domain_keys(&key.domain)?
                    .into_iter()
                    .find(|old| old.selector == key.selector),
            );
        }
        let changes: Vec<_> = previous.iter().map(Option::as_ref).zip(&keys).collect();
        self.store.commit(&changes, &events)?;
        for key in &keys {
            match &key.target {
                Some(target) => tracing::info!(
                    "{}: rotation started ({}, selector {}, written at {target})",
                    key.domain,
                    key.algorithm,
                    key.selector
                ),
                None => tracing::info!(
                    "{}: rotation started ({}, selector {})",
                    key.domain,
                    key.algorithm,
                    key.selector
                ),
            }
        }
        Ok(())
    }

    /// The names where keys of any domain have (or will have) a record: a delegated selector must
    /// never land on one of them.
    fn record_names_in_use(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .store
            .keys()?
            .iter()
            .filter(|key| !matches!(key.phase, Phase::Retired | Phase::Failed))
            .map(KeyRecord::record_name)
            .collect())
    }
}
