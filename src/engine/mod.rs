//! The executor: performs what the lifecycle core decides, through the DNS providers and the
//! signers, recording the intent in the store before each side effect and the outcome after.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use rotor_common::ErrorKind;
use rotor_providers::adapter::ProviderSettings;
use rotor_providers::{Change, DnsProvider, Listing, TxtValue, Zone};
use rotor_state::{Action, Check, Event, KeyRecord, Phase, Store};
use zeroize::Zeroizing;

use crate::config::{Config, DomainConfig};
use crate::keys::{DkimRecord, PrivateKey};
use crate::metrics::{CallCount, Metered};
use crate::plan::{self, DnsChange, DomainPlan, Gate, When, lifecycle};
use crate::propagation::{DnsVisibility, RecordNames, Visibility};
use crate::signer_plan;
use crate::time::rfc3339;
use crate::{crashpoint, fsutil};
use rotor_signers::{Signer, SignerKey};

pub use crate::time::{Clock, SystemClock};

/// How the pass-deadline warning starts.
const PAST_DEADLINE: &str = "pass_timeout reached";

/// The outcome of one pass.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Domains whose step failed, with the error and its kind.
    pub failed: Vec<Failure>,
    /// Steps held back, with why (a clock in doubt).
    pub warnings: Vec<String>,
}

impl PassReport {
    /// Records that `domain` failed: it takes no further step in this pass.
    fn fail(&mut self, domain: String, err: anyhow::Error) {
        self.failed.push(Failure::new(domain, &err));
    }

    /// The domains of `all` that have not failed in this pass.
    fn healthy<'d>(&self, all: &[&'d DomainConfig]) -> Vec<&'d DomainConfig> {
        all.iter()
            .copied()
            .filter(|domain| {
                !self
                    .failed
                    .iter()
                    .any(|failure| failure.domain == domain.name.as_str())
            })
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
    /// When the last pass ended, to tell a clock that jumped.
    last_pass: Option<u64>,
    /// The pass takes no new step after this.
    deadline: Option<std::time::Instant>,
    /// What this pass warns about (held steps).
    warnings: std::sync::Mutex<Vec<String>>,
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
        }
    }

    /// Ends the pass after the step in progress once `limit` has passed (from now): whatever is
    /// left is done by the next pass, and the pass warns.
    pub fn deadline(self, limit: Duration) -> Self {
        Self {
            deadline: std::time::Instant::now().checked_add(limit),
            ..self
        }
    }

    /// Tells the engine when the last pass ended (Unix seconds), so a clock behind it, or far
    /// ahead of it, holds the steps that end grace windows.
    pub fn after_pass(self, at: Option<u64>) -> Self {
        Self {
            last_pass: at,
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
        let mut report = PassReport::default();
        self.sweep();
        let all: Vec<&DomainConfig> = self.config.domains.iter().collect();
        for (domain, err) in self.start_rotations(&all, forced).await {
            report.fail(domain, err);
        }
        if self.stopping() {
            return report;
        }
        for (domain, err) in self.generate_all(&report.healthy(&all)).await {
            report.fail(domain, err);
        }
        if self.stopping() {
            return report;
        }
        for (domain, err) in self.publish_all(&report.healthy(&all)).await {
            report.fail(domain, err);
        }
        for domain in report.healthy(&all) {
            if self.stopping() {
                break;
            }
            if let Err(err) = self.advance(domain).await {
                report.fail(domain.name.to_string(), err);
            }
        }
        if let Ok(mut warnings) = self.warnings.lock() {
            report.warnings.append(&mut warnings);
        }
        report
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

    /// Generates every key of `domains` that waits for its key pair, one per core at a time. The
    /// intents are recorded in one commit before any key is written, and the results in one
    /// commit after (two store flushes per pass, not two per key).
    async fn generate_all(&self, domains: &[&DomainConfig]) -> Vec<(String, anyhow::Error)> {
        let mut jobs = Vec::new();
        let mut failures = Vec::new();
        for &domain in domains {
            match self.store.domain_keys(domain.name.as_str()) {
                Ok(keys) => {
                    let plan = self.plan_of(domain, &keys);
                    jobs.extend(
                        keys.iter()
                            .filter(|key| {
                                plan.taking(Action::GenerateKey)
                                    .any(|k| k.selector == key.selector)
                            })
                            .map(|key| (domain, key.clone())),
                    );
                }
                Err(err) => failures.push((domain.name.to_string(), err.into())),
            }
        }
        if jobs.is_empty() {
            return failures;
        }
        let intended: Vec<KeyRecord> = jobs
            .iter()
            .map(|(_, key)| KeyRecord {
                intent: Some(Action::GenerateKey),
                ..key.clone()
            })
            .collect();
        let changes: Vec<_> = jobs
            .iter()
            .map(|(_, key)| Some(key))
            .zip(&intended)
            .collect();
        if let Err(err) = self.store.commit(&changes, &[]) {
            let err = &anyhow::Error::from(err);
            failures.extend(
                jobs.iter()
                    .map(|(d, _)| (d.name.to_string(), failure::copy(err))),
            );
            return failures;
        }
        crashpoint::hit(Action::GenerateKey.id(), "started");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let results: Vec<_> =
            futures_util::stream::iter(jobs.iter().map(|(d, _)| *d).zip(intended))
                .map(|(domain, key)| async move {
                    let result = self.generate(&key).await;
                    (domain, key, result)
                })
                .buffer_unordered(cores)
                .collect()
                .await;
        let mut done = Vec::new();
        let mut events = Vec::new();
        for (domain, key, result) in results {
            match result {
                Ok(record) => {
                    let generated = KeyRecord {
                        record: Some(record),
                        intent: None,
                        error: None,
                        ..key.clone()
                    };
                    let detail = format!(
                        "{} key written to {}",
                        key.algorithm,
                        key.key_file.display()
                    );
                    events.push(self.event(&generated, detail));
                    done.push((key, generated));
                }
                Err(err) => {
                    let err = err.context(format!(
                        "{} {}: {}",
                        domain.name,
                        key.selector,
                        Action::GenerateKey
                    ));
                    if let Err(store) = self.record_error(&key, &err) {
                        tracing::error!("{}: cannot record the error: {store:#}", domain.name);
                    }
                    failures.push((domain.name.to_string(), err));
                }
            }
        }
        let changes: Vec<_> = done
            .iter()
            .map(|(before, after)| (Some(before), after))
            .collect();
        match self.store.commit(&changes, &events) {
            Ok(()) => crashpoint::hit(Action::GenerateKey.id(), "applied"),
            Err(err) => {
                let err = &anyhow::Error::from(err);
                failures.extend(
                    done.iter()
                        .map(|(k, _)| (k.domain.clone(), failure::copy(err))),
                );
            }
        }
        failures
    }

    /// Takes `domain`'s steps key by key, as far as the gates allow.
    async fn advance(&self, domain: &DomainConfig) -> Result<()> {
        let name = domain.name.as_str();
        let mut abandoned = Vec::new();
        // Each step changes one key; a rotation has fewer than twenty steps.
        for _ in 0..64 {
            if self.stopping() {
                return Ok(());
            }
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
            let step = plan.next_step().and_then(|(planned, action)| {
                let key = keys.iter().find(|k| k.selector == planned.selector)?;
                Some((key.clone(), action, planned.dns.clone()))
            });
            let Some((key, action, dns)) = step else {
                if abandoned.is_empty() {
                    return Ok(());
                }
                bail!("rotation failed: {}", abandoned.join("; "));
            };
            if let Err(err) = self.perform(domain, &key, action, &dns).await {
                let err = err.context(format!("{} {}: {}", name, key.selector, action));
                self.record_error(&key, &err)?;
                return Err(err);
            }
            if action == Action::Abandon {
                let error = self.key(&key)?.error.unwrap_or_default();
                abandoned.push(format!("{}: {error}", key.selector));
            }
        }
        bail!("{name}: the pass did not settle (this is a bug)")
    }

    /// What the time is, for the plan.
    fn when(&self, now: u64) -> When {
        When {
            now,
            last_pass: self.last_pass,
        }
    }

    /// `domain`'s plan now, from its stored `keys`.
    fn plan_of(&self, domain: &DomainConfig, keys: &[KeyRecord]) -> DomainPlan {
        DomainPlan::compute(domain, keys, self.when(self.clock.now()), false)
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
            Action::CheckPropagation => {
                return self.check_propagation(domain, &key, &keys, after).await;
            }
            Action::Activate => {
                if key.compromised.is_some() {
                    bail!("a key reported compromised is never activated");
                }
                self.recheck_before_activation(domain, &keys, &mut after)
                    .await?;
                self.apply_signers(domain, &key, &mut after, &[])?;
                format!(
                    "signers {} now sign with {}",
                    domain.signers.join(", "),
                    key.selector
                )
            }
            Action::Retire | Action::Revoke => {
                self.apply_signers(domain, &key, &mut after, &[&key])?;
                // A leaked key may be revoked before it was ever published: then no change.
                if !dns.is_empty() {
                    let zone = self.key_zone(domain, &key).await?;
                    crashpoint::hit(action.id(), "signers_done");
                    self.replace_exact(domain, &zone, dns).await?;
                    crashpoint::hit(action.id(), "dns_done");
                }
                fsutil::remove_file(&key.key_file)?;
                if action == Action::Revoke {
                    "taken out of the signers; record replaced by an empty p=; private key destroyed".to_string()
                } else {
                    "taken out of the signers; record removed; private key destroyed".to_string()
                }
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
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for (old, new) in before.iter().zip(&after) {
            let old = if old.selector == key.selector {
                key
            } else {
                old
            };
            if old == new {
                continue;
            }
            let text = if new.selector == key.selector {
                detail.clone()
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
            changes.push((Some(old), new));
        }
        self.store.commit(&changes, &events)?;
        Ok(())
    }

    fn policy_grace(&self, key: &KeyRecord) -> u64 {
        self.config
            .domain(&key.domain)
            .map_or(0, |d| d.policy.grace.secs())
    }

    async fn generate(&self, key: &KeyRecord) -> Result<String> {
        let algorithm = key.algorithm;
        let dir = key
            .key_file
            .parent()
            .context("a key file has a directory")?;
        fsutil::ensure_own_private_dir(&self.config.key_dir)?;
        fsutil::ensure_own_private_dir(dir)?;
        // Always a fresh key: a file already at this path (from a run that died before it
        // recorded the key, or planted there) is never trusted; the key is not published yet,
        // so replacing it is safe either way.
        let private =
            tokio::task::spawn_blocking(move || PrivateKey::generate(algorithm)).await??;
        fsutil::write_atomic(&key.key_file, private.pem().as_bytes(), 0o600)?;
        crashpoint::hit(Action::GenerateKey.id(), "written");
        Ok(private.record()?.to_string())
    }

    /// Makes the plan's `changes` (all at one name) where still needed: deletes exactly the
    /// values to delete that are there, adds those not there yet, in one change made only if
    /// the name still holds what was just listed; then lists again to confirm (see
    /// [`Engine::confirm`]). Every other value at the name stays.
    async fn replace_exact(
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
    async fn confirm(
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

    /// Before a switch: every key about to be activated whose last propagation check is older
    /// than `poll_every` is checked again on every server, so that a record removed (or
    /// changed) meanwhile, e.g. while the activation window was closed, is never activated.
    async fn recheck_before_activation(
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
    async fn visible(&self, domain: &DomainConfig, key: &KeyRecord) -> Result<Check> {
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

    async fn check_propagation(
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

    /// Moves every signer of `domain` to the keys of `after` (without `removed`): the key files
    /// placed on all of them first, then each switched; old files are deleted only once all have
    /// switched. A signer that fails is rolled back by its adapter and the others keep their new
    /// state (every key they may sign with is still published); the error names each failure,
    /// `key`'s record says where each signer stands, and the next run tries again.
    fn apply_signers(
        &self,
        domain: &DomainConfig,
        key: &KeyRecord,
        after: &mut [KeyRecord],
        removed: &[&KeyRecord],
    ) -> Result<()> {
        let plan = signer_plan::from_keys(domain.name.as_str(), after, removed);
        let holds =
            |keys: &[SignerKey], key: &KeyRecord| keys.iter().any(|k| k.selector == key.selector);
        for key in after
            .iter()
            .filter(|k| holds(&plan.signing, k) || holds(&plan.kept, k))
        {
            matches_its_record(key)?;
        }
        // The keys leaving the signers (those asked for, and any leaked key the plan drops).
        let leaving: Vec<KeyRecord> = after
            .iter()
            .filter(|k| holds(&plan.removed, k))
            .cloned()
            .collect();
        let signers: Vec<(&String, &dyn Signer)> = domain
            .signers
            .iter()
            .map(|name| (name, self.parts.signers[name].as_ref()))
            .collect();
        for (name, signer) in &signers {
            signer
                .stage(&plan)
                .with_context(|| format!("signer {name}: placing the key files"))?;
        }
        // The step's name for the crash points (the intent is recorded by now).
        let step = key.intent.map_or("signers", Action::id);
        crashpoint::hit(step, "staged");
        let mut states = BTreeMap::new();
        let mut failures = Vec::new();
        let mut kinds = BTreeSet::new();
        for (name, signer) in &signers {
            let state = match signer.switch(&plan) {
                Ok(()) => None,
                Err(err) => {
                    kinds.insert(err.kind());
                    failures.push(format!("signer {name}: {err:#}"));
                    Some(format!("failed, kept its previous keys: {err:#}"))
                }
            };
            states.insert(name.to_string(), state);
        }
        if !failures.is_empty() {
            let current = self.key(key)?;
            let mut noted = current.clone();
            for (name, state) in &states {
                let done = if plan.removed.is_empty() {
                    "signing"
                } else {
                    "removed"
                };
                let state = state.clone().unwrap_or_else(|| done.to_string());
                noted.signers.insert(name.clone(), state);
            }
            self.store.commit(&[(Some(&current), &noted)], &[])?;
            // Worth retrying as it is only if every signer's failure is.
            let kind = kinds.into_iter().max().unwrap_or(ErrorKind::NeedsOperator);
            return Err(failure::Kinded {
                kind,
                message: failures.join("; "),
            }
            .into());
        }
        crashpoint::hit(step, "switched");
        for (name, signer) in &signers {
            signer
                .clean(&plan)
                .with_context(|| format!("signer {name}: deleting old key files"))?;
        }
        self.clean_departed(domain, &leaving.iter().collect::<Vec<_>>())?;
        // Every key records which signers hold it, so that its retirement reaches each of them,
        // even one taken out of the domain's `signers:` since.
        for record in after.iter_mut() {
            let state = if holds(&plan.removed, record) {
                "removed"
            } else if plan.signing.iter().any(|k| k.selector == record.selector) {
                "signing"
            } else if plan.kept.iter().any(|k| k.selector == record.selector) {
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
        Ok(())
    }

    /// Takes the `removed` keys out of the signers that held them but no longer sign the domain
    /// (taken out of its `signers:`): their rows and key files go too. A signer that is not in
    /// the config any more cannot be reached: the key's retirement waits, and says why.
    fn clean_departed(&self, domain: &DomainConfig, removed: &[&KeyRecord]) -> Result<()> {
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
                .switch(&plan)
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

/// `key`'s record among `keys`.
fn this<'k>(keys: &'k mut [KeyRecord], key: &KeyRecord) -> &'k mut KeyRecord {
    keys.iter_mut()
        .find(|k| k.selector == key.selector)
        .expect("complete() keeps every key")
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

mod failure;
mod publish;
mod rotation;

pub use failure::Failure;
#[cfg(test)]
mod tests;
