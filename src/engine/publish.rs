//! Publishing: every key ready to publish goes to its provider in one batch per zone, with the
//! intent of all of them recorded first and their new phase committed together after.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use rotor_providers::{Change, TxtValue, Zone};
use rotor_state::{Action, KeyRecord};

use super::Engine;
use crate::config::DomainConfig;
use crate::crashpoint;
use crate::keys::DkimRecord;
use crate::plan::{DnsChange, dns, lifecycle};

/// A key to publish, with its domain.
pub(super) type Member<'d> = (&'d DomainConfig, KeyRecord);

impl Engine<'_> {
    /// Publishes every key of `domains` whose next step is to publish. Returns the domains
    /// that failed, with why.
    pub(super) async fn publish_all(
        &self,
        domains: &[&DomainConfig],
    ) -> Vec<(String, anyhow::Error)> {
        let mut failures = Vec::new();
        let mut groups: BTreeMap<(String, String), (Zone, Vec<Member>)> = BTreeMap::new();
        for &domain in domains {
            let keys = match self.store.domain_keys(domain.name.as_str()) {
                Ok(keys) => keys,
                Err(err) => {
                    failures.push((domain.name.to_string(), err.into()));
                    continue;
                }
            };
            let plan = self.plan_of(domain, &keys);
            for key in keys {
                if !plan
                    .taking(Action::Publish)
                    .any(|k| k.selector == key.selector)
                {
                    continue;
                }
                match self.key_zone(domain, &key).await {
                    Ok(zone) => {
                        let group = (domain.provider.clone(), zone.name.clone());
                        groups
                            .entry(group)
                            .or_insert_with(|| (zone, Vec::new()))
                            .1
                            .push((domain, key));
                    }
                    Err(err) => failures.push(self.failed(domain, &key, err)),
                }
            }
        }
        let total = groups.values().map(|(_, members)| members.len()).sum();
        let bar = self.progress.stage("records published", total);
        for (zone, members) in groups.into_values() {
            bar.inc(members.len() as u64);
            match self.publish(&zone, &members).await {
                Ok(refused) => failures.extend(refused.into_iter().map(|(domain, err)| {
                    let err = err.context(format!("{domain}: {}", Action::Publish));
                    (domain, err)
                })),
                Err(err) => {
                    let err = &err;
                    for (domain, key) in &members {
                        failures.push(self.failed(domain, key, super::failure::copy(err)));
                    }
                }
            }
        }
        bar.finish();
        failures
    }

    /// Records `err` on `key` and says which domain failed.
    fn failed(
        &self,
        domain: &DomainConfig,
        key: &KeyRecord,
        err: anyhow::Error,
    ) -> (String, anyhow::Error) {
        let err = err.context(format!(
            "{} {}: {}",
            domain.name,
            key.selector,
            Action::Publish
        ));
        if let Err(store) = self.record_error(key, &err) {
            tracing::error!("{}: cannot record the error: {store:#}", domain.name);
        }
        (domain.name.to_string(), err)
    }

    /// Publishes `members`, keys of one provider and zone, with one `apply`. A key whose name
    /// holds a DKIM record rotor did not publish is held back alone (its error recorded, the
    /// others published): those are returned, by domain.
    pub(super) async fn publish(
        &self,
        zone: &Zone,
        members: &[Member<'_>],
    ) -> Result<Vec<(String, anyhow::Error)>> {
        let Some((first, _)) = members.first() else {
            return Ok(Vec::new());
        };
        let provider = self.provider(first);
        let intended: Vec<KeyRecord> = members
            .iter()
            .map(|(_, key)| KeyRecord {
                intent: Some(Action::Publish),
                ..key.clone()
            })
            .collect();
        let changes: Vec<_> = members
            .iter()
            .zip(&intended)
            .filter(|((_, key), intended)| key != *intended)
            .map(|((_, key), intended)| (Some(key), intended))
            .collect();
        self.store.commit(&changes, &[])?;
        crashpoint::hit(Action::Publish.id(), "started");

        let names: Vec<String> = intended.iter().map(KeyRecord::record_name).collect();
        let found = provider.list_txt_many(zone, &names).await?;
        let mut adds = Vec::new();
        let mut refused = Vec::new();
        for (index, ((domain, _), key)) in members.iter().zip(&intended).enumerate() {
            let Some(DnsChange::Add { name, value, ttl }) =
                dns::changes(key, Action::Publish, domain.policy.ttl).pop()
            else {
                bail!(
                    "{} {}: a key to publish has a record",
                    key.domain,
                    key.selector
                );
            };
            let values = found.get(&name).map(Vec::as_slice).unwrap_or_default();
            if values.iter().any(|v| v.joined() == value) {
                continue;
            }
            if let Some(other) = values
                .iter()
                .find(|v| DkimRecord::parse(&v.joined()).is_some())
            {
                // Only this key is held back: the other domains of the zone go on.
                refused.push((
                    index,
                    anyhow!(
                        "{name} already holds a DKIM record rotor did not publish ({:.40}…); rotor will not add a second one nor touch it",
                        other.joined()
                    ),
                ));
                continue;
            }
            adds.push(Change::Add {
                name,
                value: TxtValue::from_value(&value),
                ttl,
            });
        }
        // Only if nobody changed these names since they were listed (atomically, where the
        // provider can: RFC 2136 prerequisites); otherwise the next pass reads again.
        provider.apply_if_unchanged(zone, &adds, &found).await?;
        crashpoint::hit(Action::Publish.id(), "applied");

        let now = self.clock.now();
        let held = |index: usize| refused.iter().any(|(i, _)| *i == index);
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let mut published = Vec::new();
        for (index, ((domain, _), key)) in members.iter().zip(&intended).enumerate() {
            if held(index) {
                continue;
            }
            let done = KeyRecord {
                zone: Some(zone.name.clone()),
                zone_id: zone.id.clone(),
                ..lifecycle::complete(std::slice::from_ref(key), key, Action::Publish, now)
                    .remove(0)
            };
            events.push(self.event(
                &done,
                format!(
                    "TXT {} added in zone {} via {}",
                    done.record_name(),
                    zone.name,
                    domain.provider
                ),
            ));
            published.push((key, done));
        }
        // A held-back key did nothing: its intent is withdrawn, its error recorded.
        let withdrawn: Vec<(&KeyRecord, KeyRecord)> = refused
            .iter()
            .map(|(index, err)| {
                let key = &intended[*index];
                let failed = KeyRecord {
                    intent: None,
                    error: Some(format!("{err:#}")),
                    ..key.clone()
                };
                (key, failed)
            })
            .collect();
        changes.extend(
            published
                .iter()
                .map(|(before, after)| (Some(*before), after)),
        );
        changes.extend(
            withdrawn
                .iter()
                .map(|(before, after)| (Some(*before), after)),
        );
        self.store.commit(&changes, &events)?;
        let published: Vec<KeyRecord> = published.into_iter().map(|(_, done)| done).collect();
        for key in &published {
            tracing::info!("{} {}: generated -> published", key.domain, key.selector);
        }
        Ok(refused
            .into_iter()
            .map(|(index, err)| (members[index].0.name.to_string(), err))
            .collect())
    }
}
