//! The executor: performs what the lifecycle core decides, through the DNS providers and the
//! signers, recording the intent in the store before each side effect and the outcome after.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rotor_providers::adapter::ProviderSettings;
use rotor_providers::{DnsProvider, Zone};
use rotor_state::{Action, Event, KeyRecord, PassRecord, Phase, Store};

use crate::config::{Config, DomainConfig};
use crate::metrics::{CallCount, Metered};
use crate::plan::{DnsChange, DomainPlan, When, lifecycle};
use crate::progress::Progress;
use crate::propagation::{DnsVisibility, Visibility};
use crate::time::rfc3339;
use crate::{crashpoint, fsutil};
use rotor_signers::Signer;

pub use crate::time::{Clock, SystemClock};

/// How many DNS checks (propagation, the recheck before an activation) a pass runs at once.
const PARALLEL_CHECKS: usize = 16;

/// How the pass-deadline warning starts.
const PAST_DEADLINE: &str = "pass_timeout reached";

/// The outcome of one pass.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Domains whose step failed, with the error and its kind.
    pub failed: Vec<Failure>,
    /// Steps held back, with why (a clock in doubt), and reports that could not be read.
    pub warnings: Vec<String>,
    /// The DMARC reports this pass read.
    pub reports: Ingested,
}

impl PassReport {
    /// Records that `domain` failed: it takes no further step in this pass.
    fn fail(&mut self, domain: String, err: anyhow::Error) {
        self.failed.push(Failure::new(domain, &err));
    }

    /// The domains of `all` that have not failed in this pass.
    fn healthy<'d>(&self, all: &[&'d DomainConfig]) -> Vec<&'d DomainConfig> {
        let failed: HashSet<&str> = self.failed.iter().map(|f| f.domain.as_str()).collect();
        all.iter()
            .copied()
            .filter(|domain| !failed.contains(domain.name.as_str()))
            .collect()
    }
}

/// Runs passes over the configured domains.
pub struct Engine<'a> {
    config: &'a Config,
    store: &'a Store,
    clock: &'a dyn Clock,
    parts: Parts,
    /// Set (by SIGTERM) to end the pass after the step in progress.
    stop: Option<&'a AtomicBool>,
    /// The last pass, to tell a clock that jumped.
    last_pass: Option<PassRecord>,
    /// The pass takes no new step after this.
    deadline: Option<std::time::Instant>,
    /// What this pass warns about (held steps).
    warnings: std::sync::Mutex<Vec<String>>,
    /// Where the pass shows its progress (a terminal, or nowhere).
    progress: Progress,
}

/// What the engine acts through: providers and signers by name, and the visibility check.
pub struct Parts {
    /// DNS providers by their config name.
    pub providers: BTreeMap<String, Box<dyn DnsProvider>>,
    /// Signers by their config name.
    pub signers: BTreeMap<String, Box<dyn Signer>>,
    /// The propagation check.
    pub visibility: Box<dyn Visibility>,
    /// Each provider's API calls and errors, counted for the metrics.
    pub calls: BTreeMap<String, Arc<CallCount>>,
    /// Where DMARC aggregate reports are read.
    pub reports: Vec<Box<dyn rotor_reports::Source>>,
}

impl Parts {
    /// The real adapters for the providers `config`'s domains use.
    pub async fn from_config(config: &Config) -> Result<Self, String> {
        let used: BTreeSet<&str> = config.domains.iter().map(|d| d.provider.as_str()).collect();
        let mut providers: BTreeMap<String, Box<dyn DnsProvider>> = BTreeMap::new();
        let mut calls = BTreeMap::new();
        for (name, settings) in &config.providers {
            if used.contains(name.as_str()) {
                let count = Arc::new(CallCount::default());
                let adapter = settings.build(name).await.map_err(|err| err.to_string())?;
                let metered = Metered::new(adapter, count.clone());
                providers.insert(name.clone(), Box::new(metered));
                calls.insert(name.clone(), count);
            }
        }
        Ok(Self {
            providers,
            calls,
            signers: config
                .signers
                .iter()
                .map(|(name, c)| (name.clone(), c.build()))
                .collect(),
            visibility: Box::new(DnsVisibility {
                timeout: Duration::from_secs(5),
            }),
            reports: config
                .reports
                .iter()
                .map(|source| source.build().map_err(|err| format!("reports: {err}")))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl<'a> Engine<'a> {
    /// An engine for `config`, writing to `store`, acting through `parts`.
    pub fn new(config: &'a Config, store: &'a Store, clock: &'a dyn Clock, parts: Parts) -> Self {
        Self {
            config,
            store,
            clock,
            parts,
            stop: None,
            last_pass: None,
            deadline: None,
            warnings: Default::default(),
            progress: Progress::hidden(),
        }
    }

    /// Shows the pass's progress (keys generated, records published, signers switched) on
    /// `progress`.
    pub fn progress(self, progress: Progress) -> Self {
        Self { progress, ..self }
    }

    /// Ends the pass after the step in progress once `limit` has passed (from now): whatever is
    /// left is done by the next pass, and the pass warns.
    pub fn deadline(self, limit: Duration) -> Self {
        Self {
            deadline: std::time::Instant::now().checked_add(limit),
            ..self
        }
    }

    /// Tells the engine of the last pass, so that a clock behind it, or one that jumped since,
    /// holds the steps that end grace windows.
    pub fn after_pass(self, last: Option<PassRecord>) -> Self {
        Self {
            last_pass: last,
            ..self
        }
    }

    /// Ends the pass after the step in progress once `stop` is set.
    pub fn stop_on(self, stop: &'a AtomicBool) -> Self {
        Self {
            stop: Some(stop),
            ..self
        }
    }

    fn stopping(&self) -> bool {
        if self
            .deadline
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
        {
            if let Ok(mut warnings) = self.warnings.lock()
                && !warnings.iter().any(|w| w.starts_with(PAST_DEADLINE))
            {
                warnings.push(format!(
                    "{PAST_DEADLINE}: the pass stopped after the step in progress; the next pass goes on"
                ));
            }
            return true;
        }
        self.stop.is_some_and(|stop| stop.load(Ordering::SeqCst))
    }

    /// One pass: start due rotations (and those in `forced`), then advance every key whose
    /// gate is open, as far as the gates allow. Reservations and publications are batched per
    /// zone across domains; the other steps go key by key.
    pub async fn run(&self, forced: &BTreeSet<String>) -> PassReport {
        let mut report = PassReport {
            reports: self.ingest().await,
            ..PassReport::default()
        };
        let (due, every) = self.due_domains(forced);
        let (all, every) = match self.leased(&due) {
            Ok(leased) if leased.len() == due.len() => (leased, every),
            // Some are another instance's now: this pass leaves them, and their index entries;
            // a rotation asked for one of them is not started, and says so.
            Ok(leased) => {
                for domain in due.iter().filter(|d| forced.contains(d.name.as_str())) {
                    if !leased.iter().any(|l| l.name == domain.name) {
                        report.fail(
                            domain.name.to_string(),
                            anyhow::anyhow!(
                                "another rotor is working on {} now: try again after its pass",
                                domain.name
                            ),
                        );
                    }
                }
                (leased, false)
            }
            Err(err) => {
                let err = anyhow::anyhow!(err).context("cannot lease the due domains");
                for domain in &due {
                    report.fail(domain.name.to_string(), anyhow::anyhow!("{err:#}"));
                }
                return report;
            }
        };
        if every || !self.store.closed_cleanly() {
            self.sweep();
        }
        self.steps(&all, forced, &mut report).await;
        self.schedule(&all, every);
        if let Ok(mut warnings) = self.warnings.lock() {
            report.warnings.append(&mut warnings);
        }
        report
    }

    /// Those of `due` this instance may work on: leased to it in the store (every one, with a
    /// store of one host), for `store.lease_for` and renewed while the pass runs.
    fn leased<'d>(
        &self,
        due: &[&'d DomainConfig],
    ) -> Result<Vec<&'d DomainConfig>, rotor_state::StoreError> {
        let names: Vec<&str> = due.iter().map(|d| d.name.as_str()).collect();
        let leased = self.store.lease(&names, self.config.lease_for())?;
        let others = due.len() - leased.len();
        if others > 0 {
            tracing::info!("{others} due domain(s) left to the other rotors working on them");
        }
        Ok(due
            .iter()
            .copied()
            .filter(|d| {
                leased
                    .binary_search_by(|l| l.as_str().cmp(d.name.as_str()))
                    .is_ok()
            })
            .collect())
    }

    /// The steps of a pass over `all`, the domains it plans.
    async fn steps(
        &self,
        all: &[&DomainConfig],
        forced: &BTreeSet<String>,
        report: &mut PassReport,
    ) {
        for domain in all {
            if let Err(err) = self.alert(domain) {
                self.warn(format!("{}: DMARC alert: {err:#}", domain.name));
            }
        }
        for (domain, err) in self.start_rotations(all, forced).await {
            report.fail(domain, err);
        }
        if self.stopping() {
            return;
        }
        for (domain, err) in self.generate_all(&report.healthy(all)).await {
            report.fail(domain, err);
        }
        if self.stopping() {
            return;
        }
        for (domain, err) in self.publish_all(&report.healthy(all)).await {
            report.fail(domain, err);
        }
        let healthy = report.healthy(all);
        self.advance_all(healthy, report).await;
        for domain in report.healthy(all) {
            if self.stopping() {
                break;
            }
            if let Err(err) = self.reprobe(domain).await {
                report.fail(domain.name.to_string(), err);
            }
        }
    }

    /// Removes what a run that died left of its atomic writes (temporary files, some holding a
    /// private key) in rotor's key directories and every signer's directories. Under the lock,
    /// so no live write of rotor's is touched.
    fn sweep(&self) {
        let mut dirs = vec![self.config.key_dir.clone()];
        if let Ok(entries) = std::fs::read_dir(&self.config.key_dir) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        let mut swept = 0;
        for dir in &dirs {
            match fsutil::sweep_temp_files(dir) {
                Ok(count) => swept += count,
                Err(err) => self.warn(format!("cleaning {}: {err:#}", dir.display())),
            }
        }
        for (name, signer) in &self.parts.signers {
            if let Err(err) = signer.sweep() {
                self.warn(format!("signer {name}: cleaning its directories: {err:#}"));
            }
        }
        if swept > 0 {
            tracing::info!("removed {swept} temporary files left by a run that died");
        }
    }

    /// What the time is, for the plan.
    fn when(&self, now: u64) -> When {
        When::after(self.last_pass.as_ref(), now, self.clock.boot())
    }

    /// `domain`'s plan now, from its stored `keys`.
    fn plan_of(&self, domain: &DomainConfig, keys: &[KeyRecord]) -> DomainPlan {
        let days = self.days(domain);
        DomainPlan::compute(domain, keys, &days, self.when(self.clock.now()), false)
    }

    /// What DMARC reports said of `domain`'s selectors. Unreadable: none, which holds every
    /// retirement that waits for reports (the safe side), and warns.
    fn days(&self, domain: &DomainConfig) -> Vec<rotor_state::DkimDay> {
        self.store
            .dkim_days(domain.name.as_str())
            .unwrap_or_else(|err| {
                self.warn(format!(
                    "{}: cannot read the DMARC evidence: {err}",
                    domain.name
                ));
                Vec::new()
            })
    }

    fn warn(&self, warning: String) {
        if let Ok(mut warnings) = self.warnings.lock()
            && !warnings.contains(&warning)
        {
            warnings.push(warning);
        }
    }

    /// The key as the store holds it now.
    fn key(&self, key: &KeyRecord) -> Result<KeyRecord> {
        self.store
            .domain_keys(&key.domain)?
            .into_iter()
            .find(|k| k.selector == key.selector)
            .ok_or_else(|| {
                anyhow!(
                    "key {}/{} vanished from the store",
                    key.domain,
                    key.selector
                )
            })
    }

    fn record_error(&self, key: &KeyRecord, err: &anyhow::Error) -> Result<()> {
        let current = self.key(key)?;
        let failed = KeyRecord {
            error: Some(format!("{err:#}")),
            error_kind: Some(failure::kind_of(err)),
            ..current.clone()
        };
        self.store.commit(&[(Some(&current), &failed)], &[])?;
        Ok(())
    }

    fn event(&self, key: &KeyRecord, detail: impl Into<String>) -> Event {
        Event {
            at: self.clock.now(),
            domain: key.domain.clone(),
            selector: key.selector.clone(),
            phase: key.phase,
            detail: detail.into(),
        }
    }

    fn provider(&self, domain: &DomainConfig) -> &dyn DnsProvider {
        self.parts.providers[&domain.provider].as_ref()
    }

    /// The zone that holds `fqdn`: as configured, or as the provider finds it.
    async fn zone(&self, domain: &DomainConfig, fqdn: &str) -> Result<Zone> {
        Ok(match &domain.zone {
            Some(zone) => Zone {
                name: zone.to_string(),
                id: None,
            },
            None => self.provider(domain).find_zone(fqdn).await?,
        })
    }

    /// The zone of `key`'s record: as recorded when it was published, or looked up.
    async fn key_zone(&self, domain: &DomainConfig, key: &KeyRecord) -> Result<Zone> {
        match &key.zone {
            Some(name) => Ok(Zone {
                name: name.clone(),
                id: key.zone_id.clone(),
            }),
            None => self.zone(domain, &key.record_name()).await,
        }
    }

    fn key_file(&self, domain: &str, selector: &str) -> PathBuf {
        self.config
            .key_dir
            .join(domain)
            .join(format!("{selector}.pem"))
    }

    /// Records `action` as the key's intent (before any side effect), unless it already is.
    fn intend(&self, key: &KeyRecord, action: Action) -> Result<KeyRecord> {
        if key.intent == Some(action) || action == Action::CheckPropagation {
            return Ok(key.clone());
        }
        let intended = KeyRecord {
            intent: Some(action),
            ..key.clone()
        };
        self.store.commit(&[(Some(key), &intended)], &[])?;
        Ok(intended)
    }

    /// Performs `action` on `key`, with the exact DNS changes the plan gave it.
    async fn perform(
        &self,
        domain: &DomainConfig,
        key: &KeyRecord,
        action: Action,
        dns: &[DnsChange],
    ) -> Result<()> {
        if action == Action::Publish {
            let zone = self.key_zone(domain, key).await?;
            let refused = self.publish(&zone, &[(domain, key.clone())]).await?;
            return match refused.into_iter().next() {
                Some((_, err)) => Err(err),
                None => Ok(()),
            };
        }
        let key = self.intend(key, action)?;
        crashpoint::hit(action.id(), "started");
        let keys = self.store.domain_keys(&key.domain)?;
        let now = self.clock.now();
        let mut after = lifecycle::complete(&keys, &key, action, now);
        let detail = match action {
            Action::GenerateKey => {
                let record = self.generate(&key).await?;
                let done = this(&mut after, &key);
                done.record = Some(record);
                format!(
                    "{} key written to {}",
                    key.algorithm,
                    key.key_file.display()
                )
            }
            Action::Publish => unreachable!("publishing is done by publish()"),
            Action::CheckPropagation
            | Action::Activate
            | Action::Retire
            | Action::Revoke
            | Action::Rollback => {
                bail!("{action} is taken for all domains at once, not here (this is a bug)")
            }
            Action::RemoveRevoked => {
                let zone = self.key_zone(domain, &key).await?;
                self.replace_exact(domain, &zone, dns).await?;
                "revoked record removed".to_string()
            }
            Action::Abandon => {
                if !dns.is_empty() {
                    let zone = self.key_zone(domain, &key).await?;
                    self.replace_exact(domain, &zone, dns).await?;
                }
                fsutil::remove_file(&key.key_file)?;
                let reason = format!(
                    "not visible everywhere within propagation.timeout ({}); record and key removed, the current key keeps signing",
                    domain.policy.propagation.timeout
                );
                let done = this(&mut after, &key);
                done.error = Some(reason.clone());
                reason
            }
        };
        crashpoint::hit(action.id(), "applied");
        self.commit(&keys, &key, after, detail)
    }

    /// Writes every changed key of `after` (checked against `before`, with `key` as it is
    /// now) and one event per changed key.
    fn commit(
        &self,
        before: &[KeyRecord],
        key: &KeyRecord,
        after: Vec<KeyRecord>,
        detail: String,
    ) -> Result<()> {
        let (changes, events) = self.changes(before, key, &after, &detail);
        self.commit_all(&changes, &events)?;
        Ok(())
    }

    /// Writes every `(before, after)` pair and `events` in one commit.
    fn commit_all(
        &self,
        changes: &[(KeyRecord, KeyRecord)],
        events: &[Event],
    ) -> Result<(), rotor_state::StoreError> {
        let refs: Vec<(Option<&KeyRecord>, &KeyRecord)> =
            changes.iter().map(|(old, new)| (Some(old), new)).collect();
        self.store.commit(&refs, events)
    }

    /// Every changed key of `after` (as `(before, after)`, with `key` as it is now) and one
    /// event per changed key, for one commit.
    fn changes(
        &self,
        before: &[KeyRecord],
        key: &KeyRecord,
        after: &[KeyRecord],
        detail: &str,
    ) -> (Vec<(KeyRecord, KeyRecord)>, Vec<Event>) {
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for (old, new) in before.iter().zip(after) {
            let old = if old.selector == key.selector {
                key
            } else {
                old
            };
            if old == new {
                continue;
            }
            let text = if new.selector == key.selector {
                detail.to_string()
            } else if new.phase == Phase::Active {
                format!("activated together with {}: {detail}", key.selector)
            } else {
                format!(
                    "replaced by {}; grace window until {}",
                    key.selector,
                    rfc3339(new.since + self.policy_grace(new))
                )
            };
            if old.phase != new.phase || new.selector == key.selector {
                events.push(self.event(new, text));
            }
            if new.phase != old.phase {
                tracing::info!(
                    "{} {}: {} -> {}",
                    new.domain,
                    new.selector,
                    old.phase,
                    new.phase
                );
            }
            changes.push((old.clone(), new.clone()));
        }
        (changes, events)
    }

    fn policy_grace(&self, key: &KeyRecord) -> u64 {
        self.config
            .domain(&key.domain)
            .map_or(0, |d| d.policy.grace.secs())
    }
}

/// `key`'s record among `keys`.
fn this<'k>(keys: &'k mut [KeyRecord], key: &KeyRecord) -> &'k mut KeyRecord {
    keys.iter_mut()
        .find(|k| k.selector == key.selector)
        .expect("complete() keeps every key")
}

mod advance;
mod dns;
mod due;
mod failure;
mod generate;
mod ingest;
mod prove;
mod publish;
mod rotation;
mod switch;
mod visibility;

pub use failure::Failure;
pub use ingest::Ingested;
#[cfg(test)]
mod tests;
