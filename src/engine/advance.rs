//! The steps after publishing, in rounds over all domains: in each round every domain still
//! moving takes its plan's next step. Propagation checks go a few domains at a time; steps that
//! switch signers are gathered across domains and taken together (see [`Engine::switch_steps`]),
//! so each signer is rewritten and reloaded once per round, not once per domain.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use rotor_state::{Action, KeyRecord};

use super::{Engine, PassReport};
use crate::config::DomainConfig;
use crate::plan::{self, DnsChange, Gate};

/// A domain's next step: the key that acts, the action and its exact DNS changes.
type Step<'d> = (&'d DomainConfig, KeyRecord, Action, Vec<DnsChange>);

/// At most this many rounds in a pass (a rotation has fewer than twenty steps).
const ROUNDS: usize = 64;

/// Whether `action` switches the signers (and so is taken in a batch).
fn switches_signers(action: Action) -> bool {
    matches!(
        action,
        Action::Activate | Action::Retire | Action::Revoke | Action::Rollback
    )
}

impl Engine<'_> {
    /// Takes the steps of `domains`, as far as the gates allow, recording in `report` each
    /// domain that fails (it takes no further step in this pass).
    pub(super) async fn advance_all(&self, domains: Vec<&DomainConfig>, report: &mut PassReport) {
        let mut moving = domains;
        let mut abandoned: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for _ in 0..ROUNDS {
            if moving.is_empty() || self.stopping() {
                break;
            }
            let mut switching = Vec::new();
            let mut others = Vec::new();
            let mut next = Vec::new();
            for domain in moving {
                match self.next_step(domain) {
                    Ok(Some(step)) => {
                        next.push(domain);
                        match switches_signers(step.2) {
                            true => switching.push(step),
                            false => others.push(step),
                        }
                    }
                    Ok(None) => {}
                    Err(err) => report.fail(domain.name.to_string(), err),
                }
            }
            // Propagation checks ask DNS servers and change nothing: several at once. The other
            // steps change DNS records, one at a time.
            let (checks, changes): (Vec<_>, Vec<_>) = others
                .into_iter()
                .partition(|step| step.2 == Action::CheckPropagation);
            let checks = checks.into_iter().map(|(domain, key, ..)| (domain, key));
            for (domain, err) in self.check_propagation_all(checks.collect()).await {
                report.fail(domain, err);
            }
            let mut results = Vec::new();
            for step in changes {
                if self.stopping() {
                    break;
                }
                let (domain, key, action) = (step.0, step.1.clone(), step.2);
                let result = self.take(step).await;
                if result.is_ok() && action == Action::Abandon {
                    let error = self.key(&key).ok().and_then(|k| k.error);
                    abandoned
                        .entry(domain.name.to_string())
                        .or_default()
                        .push(format!("{}: {}", key.selector, error.unwrap_or_default()));
                }
                results.push((domain, result));
            }
            if !switching.is_empty() && !self.stopping() {
                for (domain, err) in self.switch_steps(switching).await {
                    report.fail(domain, err);
                }
            }
            for (domain, result) in results {
                if let Err(err) = result {
                    report.fail(domain.name.to_string(), err);
                }
            }
            moving = report.healthy(&next);
        }
        for domain in &moving {
            report.fail(
                domain.name.to_string(),
                anyhow!("{}: the pass did not settle (this is a bug)", domain.name),
            );
        }
        for (domain, abandoned) in abandoned {
            if !report.failed.iter().any(|f| f.domain == domain) {
                report.fail(domain, anyhow!("rotation failed: {}", abandoned.join("; ")));
            }
        }
    }

    /// `domain`'s next step now, from its plan; warns of the steps a clock in doubt holds.
    fn next_step<'d>(&self, domain: &'d DomainConfig) -> Result<Option<Step<'d>>> {
        let name = domain.name.as_str();
        let keys = self.store.domain_keys(name)?;
        let plan = self.plan_of(domain, &keys);
        for held in &plan.keys {
            if let plan::Step::Wait {
                gate: gate @ Gate::ClockInDoubt { .. },
                ..
            } = &held.step
            {
                self.warn(format!("{name} {}: {gate}", held.selector));
            }
        }
        Ok(plan.next_step().and_then(|(planned, action)| {
            let key = keys.iter().find(|k| k.selector == planned.selector)?;
            Some((domain, key.clone(), action, planned.dns.clone()))
        }))
    }

    /// Takes one step that switches no signer; its error is recorded on the key.
    async fn take(&self, (domain, key, action, dns): Step<'_>) -> Result<()> {
        let Err(err) = self.perform(domain, &key, action, &dns).await else {
            return Ok(());
        };
        let err = err.context(format!("{} {}: {}", domain.name, key.selector, action));
        self.record_error(&key, &err)?;
        Err(err)
    }
}
