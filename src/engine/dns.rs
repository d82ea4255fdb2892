//! DNS changes: the plan's exact changes made at the provider only where still needed, then
//! confirmed by listing again.

use anyhow::Result;
use rotor_providers::{Change, Listing, TxtValue, Zone};

use super::{Engine, failure};
use crate::config::DomainConfig;
use crate::plan::DnsChange;

impl Engine<'_> {
    /// Makes the plan's `changes` (all at one name) where still needed: deletes exactly the
    /// values to delete that are there, adds those not there yet, in one change made only if
    /// the name still holds what was just listed; then lists again to confirm (see
    /// [`Engine::confirm`]). Every other value at the name stays.
    pub(super) async fn replace_exact(
        &self,
        domain: &DomainConfig,
        zone: &Zone,
        changes: &[DnsChange],
    ) -> Result<()> {
        let Some(name) = changes.first().map(DnsChange::name) else {
            return Ok(());
        };
        let values = self.provider(domain).list_txt(zone, name).await?;
        let holds = |value: &str| values.iter().any(|v| v.joined() == value);
        let mut needed = Vec::new();
        for change in changes {
            match change {
                DnsChange::Delete { name, value } => {
                    needed.extend(values.iter().filter(|v| v.joined() == *value).map(|found| {
                        Change::Delete {
                            name: name.clone(),
                            value: found.clone(),
                        }
                    }))
                }
                DnsChange::Add { name, value, ttl } if !holds(value) => {
                    needed.push(Change::Add {
                        name: name.clone(),
                        value: TxtValue::from_value(value),
                        ttl: *ttl,
                    });
                }
                DnsChange::Add { .. } => {}
            }
        }
        if !needed.is_empty() {
            let read = Listing::from([(name.to_string(), values)]);
            self.provider(domain)
                .apply_if_unchanged(zone, &needed, &read)
                .await?;
        }
        self.confirm(domain, zone, name, changes).await
    }

    /// Lists `name` again after a change and checks that every value deleted is gone and every
    /// value added is there: a provider that answered success without doing it is caught
    /// before the key is marked retired.
    pub(super) async fn confirm(
        &self,
        domain: &DomainConfig,
        zone: &Zone,
        name: &str,
        changes: &[DnsChange],
    ) -> Result<()> {
        let values: Vec<String> = self
            .provider(domain)
            .list_txt(zone, name)
            .await?
            .iter()
            .map(TxtValue::joined)
            .collect();
        for change in changes {
            let there = values.iter().any(|v| v == change.value());
            match change {
                DnsChange::Delete { .. } if there => {
                    return Err(failure::transient(format!(
                        "provider {} reported the change done, but {name} still holds the record; will try again",
                        domain.provider
                    )));
                }
                DnsChange::Add { value, .. } if !there => {
                    return Err(failure::transient(format!(
                        "provider {} reported the change done, but {name} does not hold {value:?}; will try again",
                        domain.provider
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
