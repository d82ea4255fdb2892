//! One function per command.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::plan::evidence::Evidence;
use crate::progress::Progress;
use anyhow::{Context, Result};
use rotor_common::ErrorKind;
use rotor_providers::Zone;
use rotor_providers::adapter::ProviderSettings;
use rotor_state::{Compromise, Event, KeyRecord, Location, Phase, Snapshot, Store, StoreError};

use crate::cli::CatalogueFormat;
use crate::config::{Authoritative, Config, DomainConfig};
use crate::engine::{Clock, Engine, Failure, Parts, PassReport, SystemClock};
use crate::metrics::{self, PassMetrics};
use crate::notify::{self, Notice};
use crate::plan::{ByDomain, Plan, When, lifecycle};
use crate::propagation::{DnsVisibility, Visibility};
use crate::{fsutil, status};

/// An error with its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// Bad usage or config: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Another rotor holds the lock: exit 75.
    #[error("another rotor is running (lock {0} is held); try again later")]
    Locked(String),
}

/// Exit status of a command that ran.
pub type Code = u8;

/// Loads the config, mapping its errors to exit code 2.
pub fn load(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|err| Exit::Usage(err.to_string()).into())
}

/// Holds rotor's lock in `state_dir` for as long as it lives (the lock goes with the file).
pub struct Lock {
    _file: File,
}

/// Takes rotor's lock, or fails at once with [`Exit::Locked`] if another rotor holds it.
pub fn lock(config: &Config) -> Result<Lock> {
    fsutil::create_dir(&config.state_dir)?;
    let path = config.state_dir.join("rotor.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Exit::Locked(path.display().to_string()).into()),
        Err(TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// How long `rotor rotate` and `rotor revoke`, run by an operator, wait for a pass that holds
/// the lock (the daemon's, a timer's) to end. `rotor run` never waits: the next timer runs it.
const OPERATOR_WAIT: Duration = Duration::from_secs(120);

/// [`lock`], waiting up to `timeout` while another pass holds it (said once on stderr).
pub fn lock_waiting(config: &Config, timeout: Duration) -> Result<Lock> {
    let deadline = Instant::now() + timeout;
    let mut said = false;
    loop {
        match lock(config) {
            Err(err)
                if matches!(err.downcast_ref::<Exit>(), Some(Exit::Locked(_)))
                    && Instant::now() < deadline =>
            {
                if !said {
                    eprintln!("rotor: another rotor is running a pass; waiting for it to end");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Where the store is: sled in `state_dir/store`, or the shared database `store:` names (its
/// password read now).
fn location(config: &Config) -> Result<Location> {
    config
        .store_location()
        .map_err(|message| Exit::Usage(message).into())
}

/// Opens the store for a pass (the caller holds the lock). A reader (`status`, `history`,
/// `plan`) may have a sled store open for a moment: the pass waits for it rather than failing.
pub fn open_store(config: &Config) -> Result<Store> {
    let location = location(config)?;
    Ok(location.open_waiting(Duration::from_secs(30), || {
        tracing::info!("waiting for a reader of the store to finish");
    })?)
}

/// Reads the store, never stopping a pass: while one runs, what it last committed; without the
/// history. No store yet reads as empty (and creates nothing).
fn read_store<T: Default>(config: &Config, read: impl FnOnce(Snapshot) -> T) -> Result<T> {
    read_snapshot(config, None, false, read)
}

/// What readers see of `domains` (all: `None`), the history only with `history`; see
/// [`read_store`].
fn read_snapshot<T: Default>(
    config: &Config,
    domains: Option<&[&str]>,
    history: bool,
    read: impl FnOnce(Snapshot) -> T,
) -> Result<T> {
    let location = location(config)?;
    match location.read(domains, history, Duration::from_secs(5)) {
        Ok(Some(snapshot)) => Ok(read(snapshot)),
        Ok(None) => Ok(T::default()),
        Err(StoreError::Busy { path }) => Err(Exit::Locked(path.display().to_string()).into()),
        Err(err) => Err(err.into()),
    }
}

/// Leaves `value` to the process's exit instead of freeing it, for what a reader command
/// holds when it is done: the records of 100,000 domains and their rows took 0.3-0.5 s to free
/// one allocation at a time, and the process ends right after.
fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// What DMARC reports said of the stored domains' selectors (those of domains no longer
/// configured are never looked up).
fn evidence_of(snapshot: &Snapshot) -> Evidence {
    snapshot
        .dkim()
        .map(|(domain, days)| (domain.to_string(), days.to_vec()))
        .collect()
}

/// Every stored key.
fn stored_keys(config: &Config) -> Result<Vec<KeyRecord>> {
    read_store(config, Snapshot::into_keys)
}

fn selected<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a DomainConfig>> {
    if names.is_empty() {
        return Ok(config.domains.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            config.domain(name).ok_or_else(|| {
                Exit::Usage(format!(
                    "{name} is not a domain in {}",
                    config.path.display()
                ))
                .into()
            })
        })
        .collect()
}

/// `rotor run` and `rotor rotate`: one pass under the lock, its progress shown on `progress`.
pub async fn run(config: &Config, forced: &[String], progress: Progress) -> Result<Code> {
    let forced: BTreeSet<String> = selected(config, forced)?
        .iter()
        .filter(|_| !forced.is_empty())
        .map(|d| d.name.to_string())
        .collect();
    let parts = Parts::from_config(config).await.map_err(Exit::Usage)?;
    let _lock = if forced.is_empty() {
        lock(config)?
    } else {
        lock_waiting(config, OPERATOR_WAIT)?
    };
    let store = open_store(config)?;
    let report = pass(config, store, parts, &forced, None, progress).await?;
    for warning in &report.warnings {
        eprintln!("rotor: warning: {warning}");
    }
    for failure in &report.failed {
        eprintln!(
            "rotor: {}: {} ({})",
            failure.domain, failure.error, failure.kind
        );
    }
    Ok(failed_code(&report.failed))
}

/// The exit code of a pass with `failed` domains: 0 for none, 1 when one needs the operator,
/// 75 when every failure is one the next pass retries as it is (transient, or a conflict).
fn failed_code(failed: &[Failure]) -> Code {
    if failed.is_empty() {
        0
    } else if failed.iter().any(|f| f.kind == ErrorKind::NeedsOperator) {
        1
    } else {
        75
    }
}

/// One pass of the engine (the caller holds the lock), then what follows every pass: the
/// store's backup, the metrics file and the notifications of what changed. With `stop`, the
/// pass ends after the step in progress once it is set; its progress is shown on `progress`.
pub async fn pass(
    config: &Config,
    store: Store,
    parts: Parts,
    forced: &BTreeSet<String>,
    stop: Option<&AtomicBool>,
    progress: Progress,
) -> Result<PassReport> {
    let started = Instant::now();
    let calls = parts.calls.clone();
    let last_pass = store.last_pass()?;
    let mut engine = Engine::new(config, &store, &SystemClock, parts)
        .after_pass(last_pass)
        .deadline(config.passes.timeout.0)
        .progress(progress);
    if let Some(stop) = stop {
        engine = engine.stop_on(stop);
    }
    let report = engine.run(forced).await;
    // The metrics describe every key: read only when they are written.
    let mut keys = Vec::new();
    let mut evidence = Evidence::new();
    if config.metrics_file.is_some() {
        keys = store.keys()?;
        for domain in &config.domains {
            let days = store.dkim_days(domain.name.as_str())?;
            evidence.insert(domain.name.to_string(), days);
        }
    }
    let mut notices: Vec<Notice> = store.committed_events().iter().map(Notice::event).collect();
    let end = SystemClock.now();
    notices.extend(
        report
            .failed
            .iter()
            .map(|f| Notice::failure(&f.domain, f.kind, &f.error, end)),
    );
    store.record_pass(end, SystemClock.boot(), report.failed.is_empty())?;
    let changed = store.changed();
    store.close()?;
    if let Some(path) = &config.metrics_file {
        let measured = PassMetrics {
            now: end,
            seconds: started.elapsed().as_secs_f64(),
            success: report.failed.is_empty(),
            failures: report.failed.iter().fold(BTreeMap::new(), |mut counts, f| {
                *counts.entry(f.kind).or_default() += 1;
                counts
            }),
            calls: &calls,
            evidence: &evidence,
            reports: report.reports,
        };
        if let Err(err) = metrics::write(path, &metrics::render(config, &keys, &measured)) {
            tracing::warn!("metrics: {err:#}");
        }
    }
    notify::send(&config.notify, &notices).await;
    // A copy for the day the store is found damaged, after every pass that ran to its end and
    // changed a key, its history or the DMARC evidence (domains that failed are part of a
    // sound store); last, so that a failed backup skips neither the metrics nor the
    // notifications. A pass that changed nothing keeps the backup it has: copying a store of
    // 100,000 domains after every idle pass would cost more than the pass.
    // A sled store only: a database's backups are the database's.
    if config.store.is_none() {
        let dir = config.state_dir.join("store");
        if changed || !Store::backup_path(&dir).exists() {
            back_up(&dir)?;
        }
    }
    Ok(report)
}

/// Copies the closed store to its backup. The store may be busy for a moment: sled's threads
/// let go of it just after it is closed, and a reader may have it open; wait for either, and
/// if it stays busy, keep the previous backup and say so rather than fail the pass.
fn back_up(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(5);
    loop {
        match Store::back_up(dir) {
            Err(StoreError::Busy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(StoreError::Busy { .. }) => {
                tracing::warn!(
                    "backup of {} skipped: the store stayed in use; the previous backup is kept",
                    dir.display()
                );
                return Ok(());
            }
            other => return Ok(other?),
        }
    }
}

/// What `rotor status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusOutput {
    /// The table.
    Table,
    /// JSON rows.
    Json,
    /// One line in the Nagios/Icinga style.
    Check,
}

/// `rotor status`: exit 0 all fine, 1 warning, 2 a failed key.
pub fn status(
    config: &Config,
    domain: Option<String>,
    output: StatusOutput,
    all: bool,
) -> Result<Code> {
    let whole = domain.is_none();
    let domains = selected(config, domain.as_slice())?;
    let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
    // One domain's status reads that domain's records, not the whole store.
    let only = (!whole).then_some(names.as_slice());
    let (keys, last_pass, evidence) = read_snapshot(config, only, false, |s| {
        let (last_pass, evidence) = (s.last_pass(), evidence_of(&s));
        (s.into_keys(), last_pass, evidence)
    })?;
    let now = SystemClock.now();
    let records = keys;
    let keys = ByDomain::new(&records);
    let shown = status::rows(&domains, &keys, &evidence, false, now);
    let (mut health, mut findings) = status::health_of(&shown, &domains, &keys, &evidence, now);
    let (warn_after, critical_after) = config.pass_limits();
    if let Some((level, finding)) = status::passes(last_pass, now, warn_after, critical_after) {
        health = health.max(level);
        findings.insert(0, finding);
    }
    let mut rows = if all {
        status::rows(&domains, &keys, &evidence, true, now)
    } else {
        shown
    };
    if whole {
        let orphaned = status::orphaned(&config.domains, &keys);
        rows.extend(status::orphans(&orphaned));
        for (orphan, _) in &orphaned {
            health = health.max(status::Health::Warning);
            findings.push(format!(
                "{orphan} has keys but is no longer in {}: its records and keys are left as they are",
                config.path.display()
            ));
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = (|| -> std::io::Result<()> {
        match output {
            StatusOutput::Json => {
                serde_json::to_writer_pretty(&mut out, &rows)?;
                writeln!(out)?;
            }
            StatusOutput::Table => {
                status::table(&rows, &mut out)?;
                out.flush()?;
                for finding in &findings {
                    eprintln!("rotor: {}: {finding}", health.word().to_lowercase());
                }
            }
            StatusOutput::Check => {
                let summary = if findings.is_empty() {
                    let active = domains
                        .iter()
                        .flat_map(|d| keys.of(d.name.as_str()))
                        .filter(|k| k.phase == Phase::Active);
                    format!("{} domains, {} active keys", domains.len(), active.count())
                } else {
                    findings.join("; ")
                };
                writeln!(out, "ROTOR {} - {summary}", health.word())?;
            }
        }
        out.flush()
    })();
    to_stdout(written)?;
    leave_to_exit(rows);
    leave_to_exit(keys);
    leave_to_exit(records);
    Ok(health.code())
}

/// What `rotor revoke` was told.
pub struct Emergency {
    /// Why the key is revoked.
    pub reason: String,
    /// Skip `min_wait` for the replacement.
    pub now: bool,
    /// Revoke even before a replacement is active.
    pub force: bool,
}

/// `rotor revoke`: marks the key leaked, then runs a pass, which replaces it as fast as the gates
/// allow and revokes it as soon as it is replaced (or at once with `--force`). Later passes
/// (the timer, or `rotor run`) finish what this one cannot.
pub async fn revoke(
    config: &Config,
    domain: &str,
    selector: &str,
    emergency: Emergency,
) -> Result<Code> {
    let domain = selected(config, &[domain.to_string()])?[0].name.to_string();
    let parts = Parts::from_config(config).await.map_err(Exit::Usage)?;
    let _lock = lock_waiting(config, OPERATOR_WAIT)?;
    let store = open_store(config)?;
    let now = SystemClock.now();
    let keys = store.domain_keys(&domain)?;
    let key = keys
        .iter()
        .find(|k| k.selector == selector)
        .ok_or_else(|| Exit::Usage(format!("{domain} has no key with selector {selector}")))?;
    if matches!(key.phase, Phase::Revoked | Phase::Retired | Phase::Failed) {
        return Err(Exit::Usage(format!(
            "{domain} {selector} is {} already: nothing signs with it and no record of it can verify mail",
            key.phase
        ))
        .into());
    }
    let compromise = Compromise {
        reason: emergency.reason.clone(),
        at: now,
        skip_min_wait: emergency.now,
    };
    // A key that never signed, or one whose replacement is active, is revoked at once anyway.
    let marked = lifecycle::mark_compromised(key, compromise, emergency.force, now);
    let mut detail = format!("reported compromised: {}", emergency.reason);
    if emergency.force && key.phase == Phase::Active {
        detail.push_str("; revoked before a replacement is active (--force)");
        eprintln!(
            "rotor: warning: {domain} {selector} is taken out of the signers now (--force): mail of {domain} is not signed with a {} key until its replacement is active",
            key.algorithm
        );
    }
    if emergency.now {
        detail.push_str("; the replacement skips min_wait (--now)");
        eprintln!(
            "rotor: warning: the replacement of {domain} {selector} skips min_wait (--now): a resolver that cached the new selector's absence may fail verification until its negative TTL runs out"
        );
    }
    let event = Event {
        at: now,
        domain: domain.clone(),
        selector: selector.to_string(),
        phase: marked.phase,
        detail,
    };
    store.commit(&[(Some(key), &marked)], std::slice::from_ref(&event))?;
    notify::send(&config.notify, &[Notice::event(&event)]).await;
    let report = pass(
        config,
        store,
        parts,
        &BTreeSet::new(),
        None,
        Progress::hidden(),
    )
    .await?;
    let (keys, evidence) = read_store(config, |s| {
        let evidence = evidence_of(&s);
        (s.into_keys(), evidence)
    })?;
    let domains = selected(config, std::slice::from_ref(&domain))?;
    let keys = ByDomain::new(&keys);
    let rows = status::rows(&domains, &keys, &evidence, true, SystemClock.now());
    to_stdout(status::table(&rows, &mut std::io::stdout().lock()))?;
    let failed: Vec<Failure> = report
        .failed
        .into_iter()
        .filter(|f| f.domain == domain)
        .collect();
    for failure in &failed {
        eprintln!(
            "rotor: {}: {} ({})",
            failure.domain, failure.error, failure.kind
        );
    }
    Ok(failed_code(&failed))
}

/// What writing to standard output gave. A reader that stopped reading (`rotor … | head`) is
/// not rotor's error: the rest of the output is dropped quietly.
fn to_stdout(written: std::io::Result<()>) -> Result<()> {
    match written {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("cannot write to standard output"),
    }
}

/// Writes `text` to standard output as it is ([`to_stdout`]).
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    to_stdout(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// `rotor history`.
pub fn history(config: &Config, domain: &str, json: bool) -> Result<Code> {
    let domain = selected(config, &[domain.to_string()])?[0].name.to_string();
    let events = read_snapshot(config, Some(&[&domain]), true, |snapshot| {
        snapshot.history(&domain)
    })?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&events)?))?;
        return Ok(0);
    }
    let mut text = String::new();
    if events.is_empty() {
        text.push_str(&format!("{domain}: no history yet\n"));
    }
    for event in &events {
        text.push_str(&format!(
            "{}  {}  {}  {}\n",
            crate::time::rfc3339(event.at),
            event.selector,
            event.phase,
            event.detail
        ));
    }
    emit(&text)?;
    Ok(0)
}

/// `rotor report`: what DMARC aggregate reports said of the domain's selectors.
pub fn report(config: &Config, domain: &str, json: bool) -> Result<Code> {
    let domain = selected(config, &[domain.to_string()])?[0].name.to_string();
    let (days, keys) = read_snapshot(config, Some(&[&domain]), false, |s| {
        (s.dkim_days(&domain), s.domain_keys(&domain))
    })?;
    let rows = crate::report::selectors(&days, &keys);
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else {
        emit(&crate::report::text(&domain, &rows))?;
    }
    Ok(0)
}

/// `rotor init`: the commented example config, written where `--config` points.
pub fn init(path: &Path) -> Result<Code> {
    if path.exists() {
        return Err(Exit::Usage(format!(
            "{} exists; rotor init never overwrites a config",
            path.display()
        ))
        .into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fsutil::write_atomic(path, STARTER.as_bytes(), 0o640)?;
    println!(
        "wrote {}: edit the providers, signers and domains, then run `rotor check`",
        path.display()
    );
    Ok(0)
}

/// `rotor providers`: the catalogue of DNS providers, from the registry.
pub fn providers(format: CatalogueFormat) -> Result<Code> {
    let catalogue = rotor_providers::registry::catalogue();
    match format {
        CatalogueFormat::Json => emit(&format!("{}\n", serde_json::to_string_pretty(&catalogue)?))?,
        CatalogueFormat::Markdown => emit(&catalogue_markdown(&catalogue))?,
        CatalogueFormat::Text => {
            for info in &catalogue {
                let can = [
                    (info.exact_delete, "exact-value delete"),
                    (info.lists_values, "lists values"),
                    (info.batched, "batched"),
                ]
                .iter()
                .filter(|(has, _)| *has)
                .map(|(_, what)| *what)
                .collect::<Vec<_>>()
                .join(", ");
                let feature = info
                    .feature
                    .map(|f| format!(" (cargo feature `{f}`)"))
                    .unwrap_or_default();
                println!("type: {}  {}{feature}", info.config_type, info.name);
                println!("    can:       {can}");
                println!("    proven by: {}", proof(info.proven_by));
                println!("    notes:     {}", info.notes);
            }
        }
    }
    Ok(0)
}

/// What proves a provider works, in words.
fn proof(proof: rotor_providers::adapter::Proof) -> String {
    use rotor_providers::adapter::Proof;
    match proof {
        Proof::RealServer(server) => format!("real server in the suite ({server})"),
        Proof::ContractDouble(double) => format!("contract double ({double})"),
        Proof::LibraryOnly => "library only".into(),
    }
}

/// The catalogue as the README's Markdown table.
fn catalogue_markdown(catalogue: &[rotor_providers::adapter::ProviderInfo]) -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let yes = |has: bool| if has { "yes" } else { "no" };
    let mut table = String::from(
        "| `type:` | provider | exact-value delete | lists values | batched | proven by | feature | notes |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for info in catalogue {
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            info.config_type,
            cell(info.name),
            yes(info.exact_delete),
            yes(info.lists_values),
            yes(info.batched),
            cell(&proof(info.proven_by)),
            info.feature.map_or("—".into(), |f| format!("`{f}`")),
            cell(info.notes),
        ));
    }
    table
}

/// The starter config `rotor init` writes: the commented example.
const STARTER: &str = include_str!("../examples/rotor.yaml");

/// `rotor plan`: the plan of a pass computed now, the same value `rotor run` would apply.
pub fn plan(config: &Config, json: bool) -> Result<Code> {
    let (keys, last_pass, evidence) = read_store(config, |s| {
        let (last_pass, evidence) = (s.last_pass(), evidence_of(&s));
        (s.into_keys(), last_pass, evidence)
    })?;
    let when = When::after(last_pass.as_ref(), SystemClock.now(), SystemClock.boot());
    let plan = Plan::compute(&config.domains, &keys, &evidence, when, &BTreeSet::new());
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&plan)?))?;
    } else {
        emit(&status::plan_text(&plan))?;
    }
    leave_to_exit(plan);
    leave_to_exit(keys);
    Ok(0)
}

/// `rotor check`.
pub async fn check(config: &Config) -> Result<Code> {
    let mut failed = 0;
    let mut report = |what: String, result: Result<()>| match result {
        Ok(()) => println!("ok    {what}"),
        Err(err) => {
            failed += 1;
            println!("FAIL  {what}: {err:#}");
        }
    };
    report(format!("config {}", config.path.display()), Ok(()));
    report(
        format!("key_dir {}", config.key_dir.display()),
        fsutil::ensure_own_private_dir(&config.key_dir).map_err(anyhow::Error::from),
    );
    for domain in &config.domains {
        let settings = &config.providers[&domain.provider];
        let provider = match settings.build(&domain.provider).await {
            Ok(provider) => provider,
            Err(err) => {
                report(
                    format!("{}: provider {}", domain.name, domain.provider),
                    Err(anyhow::anyhow!(err)),
                );
                continue;
            }
        };
        // Where selectors' records go: below `_domainkey`, or where a DNAME there leads (a
        // name no selector uses stands for them; authoritative servers cache nothing).
        let probe = format!("rotor-check._domainkey.{}", domain.name);
        let visibility = DnsVisibility {
            timeout: Duration::from_secs(5),
        };
        let name = match visibility
            .alias_target(&probe, &domain.policy.propagation)
            .await
        {
            Ok(Some(target)) => {
                report(
                    format!("{}: selectors are delegated to {target}", domain.name),
                    Ok(()),
                );
                target
            }
            Ok(None) => probe,
            Err(err) => {
                report(
                    format!("{}: whether selectors are delegated", domain.name),
                    Err(anyhow::anyhow!(err)),
                );
                probe
            }
        };
        let zone = match &domain.zone {
            Some(zone) => Ok(Zone {
                name: zone.to_string(),
                id: None,
            }),
            None => provider.find_zone(&name).await.map_err(anyhow::Error::from),
        };
        let checked = match zone {
            Ok(zone) => provider
                .check(&zone)
                .await
                .map(|()| zone.name)
                .map_err(anyhow::Error::from),
            Err(err) => Err(err),
        };
        match checked {
            Ok(zone) => report(
                format!(
                    "{}: provider {} accepts updates to zone {zone}",
                    domain.name, domain.provider
                ),
                Ok(()),
            ),
            Err(err) => report(
                format!("{}: provider {}", domain.name, domain.provider),
                Err(err),
            ),
        }
        let prop = &domain.policy.propagation;
        let mut servers: Vec<(&str, std::net::SocketAddr)> =
            prop.resolvers.iter().map(|s| ("resolver", s.0)).collect();
        if let Authoritative::List(list) = &prop.authoritative {
            servers.extend(list.iter().map(|s| ("authoritative", s.0)));
        }
        for (role, server) in servers {
            let name =
                rotor_providers::dns::fqdn(domain.name.as_str()).map_err(anyhow::Error::msg)?;
            let answer = rotor_providers::dns::query(
                server,
                &name,
                hickory_proto::rr::RecordType::SOA,
                role == "resolver",
                Duration::from_secs(5),
            )
            .await
            .map(|_| ())
            .map_err(|err| anyhow::anyhow!("no answer: {err}"));
            report(format!("{}: {role} {server} answers", domain.name), answer);
        }
    }
    let read_by_rotor: Vec<String> = config.reports.iter().filter_map(|s| s.address()).collect();
    for domain in config.domains.iter().filter(|d| d.policy.monitor.is_some()) {
        let resolvers: Vec<std::net::SocketAddr> = domain
            .policy
            .propagation
            .resolvers
            .iter()
            .map(|s| s.0)
            .collect();
        let name = format!("_dmarc.{}", domain.name);
        let found = crate::propagation::txt_lookup(&name, &resolvers, Duration::from_secs(5))
            .await
            .map(|records| {
                let mut found: Vec<_> = records
                    .iter()
                    .filter_map(|r| crate::dmarc::parse(r))
                    .collect();
                (found.len(), found.pop())
            });
        let dmarc = match found {
            Ok((1, Some(dmarc))) => dmarc,
            Ok((count, Some(_))) => {
                report(
                    format!("{}: DMARC record at {name}", domain.name),
                    Err(anyhow::anyhow!(
                        "{count} DMARC records: receivers ignore them all (RFC 7489 6.6.3); keep one"
                    )),
                );
                continue;
            }
            Ok((_, None)) => {
                report(
                    format!("{}: DMARC record at {name}", domain.name),
                    Err(anyhow::anyhow!(
                        "none: receivers send no aggregate reports, so `monitor:` has no evidence (publish v=DMARC1 with rua=mailto:<an address rotor reads>)"
                    )),
                );
                continue;
            }
            Err(err) => {
                report(
                    format!("{}: DMARC record at {name}", domain.name),
                    Err(anyhow::anyhow!(err)),
                );
                continue;
            }
        };
        let reaching: Vec<&String> = dmarc
            .rua
            .iter()
            .filter(|a| read_by_rotor.contains(a))
            .collect();
        let reached = if dmarc.rua.is_empty() {
            Err(anyhow::anyhow!(
                "{name} has no rua=mailto: address: receivers send no aggregate reports"
            ))
        } else if read_by_rotor.is_empty() {
            Err(anyhow::anyhow!(
                "rua= lists {}, but no `reports:` source says which address it reads (set `address:`, or an IMAP `user:` that is the address)",
                dmarc.rua.join(", ")
            ))
        } else if reaching.is_empty() {
            Err(anyhow::anyhow!(
                "rua= lists {}, none of which rotor reads ({})",
                dmarc.rua.join(", "),
                read_by_rotor.join(", ")
            ))
        } else {
            Ok(())
        };
        report(
            format!("{}: DMARC rua= reaches a mailbox rotor reads", domain.name),
            reached,
        );
        for address in reaching
            .iter()
            .filter(|a| crate::dmarc::needs_authorization(domain.name.as_str(), a))
        {
            let auth = crate::dmarc::authorization_name(domain.name.as_str(), address);
            let records =
                crate::propagation::txt_lookup(&auth, &resolvers, Duration::from_secs(5)).await;
            let authorized = match records {
                Ok(records)
                    if records
                        .iter()
                        .any(|r| r.trim_start().starts_with("v=DMARC1")) =>
                {
                    Ok(())
                }
                Ok(_) => Err(anyhow::anyhow!(
                    "{auth} has no v=DMARC1 record: receivers will not send {}'s reports to {address} (RFC 7489 7.1)",
                    domain.name
                )),
                Err(err) => Err(anyhow::anyhow!(err)),
            };
            report(
                format!(
                    "{}: {address} is authorized to receive its reports",
                    domain.name
                ),
                authorized,
            );
        }
        let alignment = if dmarc.strict_dkim {
            "adkim=s: rotor signs with d=the domain itself, aligned for mail From it (not for its subdomains)"
        } else {
            "adkim=r: rotor signs with d=the domain itself, aligned"
        };
        report(
            format!("{}: DKIM alignment ({alignment})", domain.name),
            Ok(()),
        );
    }
    let keys = stored_keys(config)?;
    for (orphan, _) in status::orphaned(&config.domains, &ByDomain::new(&keys)) {
        println!(
            "WARN  {orphan} has keys in the store but is no longer in the config: its records, private keys and signer rows are left as they are (put it back to have them retired)"
        );
    }
    for (name, signer_config) in &config.signers {
        let signer = signer_config.build();
        report(
            format!("signer {name}"),
            signer.check().map_err(anyhow::Error::from),
        );
        if signer.probe().is_none() {
            println!(
                "WARN  signer {name} has no `probe:`: rotor cannot prove its switches with a signature of its own checking, and takes them on trust"
            );
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
