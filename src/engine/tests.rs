//! The engine against scripted parts: an in-memory DNS provider, a recording signer, a
//! visibility check the test controls, and a clock it moves by hand.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rotor_providers::{Change, DnsProvider, ProviderError, TxtValue, Zone, async_trait};
use rotor_state::{BootClock, Check, PassRecord, Phase, ServerCheck, Store};

use super::{Clock, Engine, Parts};
use crate::config::{Config, Propagation};
use crate::keys::DkimRecord;
use crate::propagation::{RecordNames, Visibility};
use rotor_signers::{Signer, SignerError, SignerPlan};

/// A wall clock and a boot clock the test moves: together as time passes, or the wall clock
/// alone, as when it is set.
struct ManualClock {
    wall: AtomicU64,
    boot: AtomicU64,
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    fn boot(&self) -> Option<BootClock> {
        Some(BootClock {
            id: 1,
            secs: self.boot.load(Ordering::SeqCst),
        })
    }
}

impl ManualClock {
    fn new(wall: u64) -> Self {
        Self {
            wall: AtomicU64::new(wall),
            boot: AtomicU64::new(600),
        }
    }

    /// `secs` pass.
    fn advance(&self, secs: u64) {
        self.wall.fetch_add(secs, Ordering::SeqCst);
        self.boot.fetch_add(secs, Ordering::SeqCst);
    }

    /// The wall clock is set `secs` ahead (an NTP step, a VM restored).
    fn jump(&self, secs: u64) {
        self.wall.fetch_add(secs, Ordering::SeqCst);
    }
}

/// A pass that ended at `at` (Unix seconds), on a boot the clock cannot compare with.
fn pass_at(at: u64) -> PassRecord {
    PassRecord {
        at,
        success: true,
        last_success: Some(at),
        boot: None,
    }
}

/// A zone in memory; `fail` makes the next `apply` fail.
#[derive(Default)]
struct Dns {
    records: Mutex<BTreeMap<String, Vec<TxtValue>>>,
    fail: AtomicBool,
    /// Answer deletions with success without making them (a provider that lies).
    ignore_deletes: AtomicBool,
}

impl Dns {
    fn values(&self, name: &str) -> Vec<String> {
        let records = self.records.lock().unwrap();
        records
            .get(name)
            .map(|v| v.iter().map(TxtValue::joined).collect())
            .unwrap_or_default()
    }
}

struct SharedDns(Arc<Dns>);

#[async_trait]
impl DnsProvider for SharedDns {
    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError> {
        if !rotor_providers::dns::within(fqdn, "example.com") {
            return Err(ProviderError::ZoneNotFound {
                provider: "dns".into(),
                name: fqdn.into(),
                detail: "only example.com here".into(),
            });
        }
        Ok(Zone {
            name: "example.com".into(),
            id: None,
        })
    }

    async fn list_txt(&self, _: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError> {
        Ok(self
            .0
            .records
            .lock()
            .unwrap()
            .get(fqdn)
            .cloned()
            .unwrap_or_default())
    }

    async fn apply(&self, _: &Zone, changes: &[Change]) -> Result<(), ProviderError> {
        if self.0.fail.swap(false, Ordering::SeqCst) {
            return Err(ProviderError::Temporary {
                provider: "dns".into(),
                detail: "SERVFAIL".into(),
                retry_after: None,
            });
        }
        let mut records = self.0.records.lock().unwrap();
        for change in changes {
            match change {
                Change::Add { name, value, .. } => {
                    records.entry(name.clone()).or_default().push(value.clone())
                }
                Change::Delete { .. } if self.0.ignore_deletes.load(Ordering::SeqCst) => {}
                Change::Delete { name, value } => records
                    .entry(name.clone())
                    .or_default()
                    .retain(|v| v != value),
            }
        }
        Ok(())
    }

    async fn check(&self, _: &Zone) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Records every plan and how many switches there were; `fail` makes the next switch fail.
#[derive(Default)]
struct Recorder {
    plans: Mutex<Vec<SignerPlan>>,
    switches: AtomicUsize,
    fail: AtomicBool,
}

struct SharedSigner(Arc<Recorder>);

impl Signer for SharedSigner {
    fn switch(&self, plans: &[SignerPlan]) -> rotor_signers::Result<()> {
        if self.0.fail.swap(false, Ordering::SeqCst) {
            return Err(SignerError::Setting("reload failed".into()));
        }
        self.0.switches.fetch_add(1, Ordering::SeqCst);
        self.0.plans.lock().unwrap().extend_from_slice(plans);
        Ok(())
    }

    fn check(&self) -> rotor_signers::Result<()> {
        Ok(())
    }
}

/// Visible when the record is in the fake zone and the test says the secondary caught up;
/// `dname` redirects every name below its first part to below its second, as a DNAME does.
struct Scripted {
    dns: Arc<Dns>,
    secondary_has_it: Arc<AtomicBool>,
    dname: Option<(String, String)>,
    /// Records of this `k=` never reach the secondary while set.
    lagging_k: Arc<Mutex<Option<String>>>,
}

#[async_trait]
impl Visibility for Scripted {
    async fn check(
        &self,
        names: RecordNames<'_>,
        expected: &DkimRecord,
        _: &Propagation,
        now: u64,
    ) -> Check {
        let primary = self
            .dns
            .values(names.record)
            .iter()
            .any(|v| DkimRecord::parse(v).is_some_and(|r| r.same_key(expected)));
        let lagging = self.lagging_k.lock().unwrap().clone();
        let secondary = primary
            && self.secondary_has_it.load(Ordering::SeqCst)
            && lagging.as_deref() != expected.algorithm();
        let server = |name: &str, ok: bool| ServerCheck {
            server: name.into(),
            role: "authoritative".into(),
            ok,
            detail: String::new(),
        };
        Check {
            at: now,
            servers: vec![server("primary", primary), server("secondary", secondary)],
        }
    }

    async fn alias_target(&self, name: &str, _: &Propagation) -> Result<Option<String>, String> {
        Ok(self.dname.as_ref().and_then(|(owner, target)| {
            name.strip_suffix(&format!(".{owner}"))
                .map(|head| format!("{head}.{target}"))
        }))
    }
}

struct World {
    _dir: tempfile::TempDir,
    config: Config,
    store: Store,
    clock: ManualClock,
    dns: Arc<Dns>,
    signer: Arc<Recorder>,
    /// Signers after the first (`mx2`, `mx3`, …).
    others: Vec<Arc<Recorder>>,
    secondary_has_it: Arc<AtomicBool>,
    dname: Option<(String, String)>,
    lagging_k: Arc<Mutex<Option<String>>>,
    /// When the engine is told the last pass ended (as `rotor run` reads it from the store).
    last_pass: Mutex<Option<PassRecord>>,
    /// The last pass's warnings.
    warnings: Mutex<Vec<String>>,
}

impl World {
    fn new() -> Self {
        Self::with("[rsa-2048]", 1)
    }

    /// A world whose domain rotates `keys` and is signed by `signers` signers.
    fn with(keys: &str, signers: usize) -> Self {
        Self::with_domains(keys, signers, &["example.com"])
    }

    /// A world of `domains`, each rotating `keys`, signed by the same `signers` signers.
    fn with_domains(keys: &str, signers: usize, domains: &[&str]) -> Self {
        Self::with_extra(keys, signers, domains, "")
    }

    /// [`World::with_domains`], with `extra` (top-level YAML lines) added to the config.
    fn with_extra(keys: &str, signers: usize, domains: &[&str], extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (1..=signers).map(|n| format!("mx{n}")).collect();
        let signer_yaml: String = names
            .iter()
            .map(|name| {
                format!("  {name}: {{type: exim, table: /t-{name}, key_dir: /kd-{name}}}\n")
            })
            .collect();
        let domain_yaml: String = domains
            .iter()
            .map(|domain| {
                format!(
                    "  - {{name: {domain}, provider: dns, signers: [{}]}}\n",
                    names.join(", ")
                )
            })
            .collect();
        let yaml = format!(
            "state_dir: {d}/state\nkey_dir: {d}/keys\ndefaults:\n  keys: {keys}\n  rotate_every: 30d\n  grace: 7d\n  propagation: {{min_wait: 4h, poll_every: 5m, timeout: 48h}}\n{extra}providers:\n  dns: {{type: rfc2136, server: 127.0.0.1}}\nsigners:\n{signer_yaml}domains:\n{domain_yaml}",
            d = dir.path().display(),
            extra = extra,
        );
        let config = Config::parse(&yaml, Path::new("test.yaml")).unwrap();
        let store = Store::open(&dir.path().join("state/store")).unwrap();
        Self {
            _dir: dir,
            config,
            store,
            clock: ManualClock::new(1_800_000_000),
            dns: Arc::default(),
            signer: Arc::default(),
            others: (1..signers).map(|_| Arc::default()).collect(),
            secondary_has_it: Arc::new(AtomicBool::new(true)),
            dname: None,
            lagging_k: Arc::default(),
            last_pass: Mutex::new(None),
            warnings: Mutex::default(),
        }
    }

    /// The same world, with `_domainkey.example.com` a DNAME of `target`.
    fn delegated_to(target: &str) -> Self {
        Self {
            dname: Some(("_domainkey.example.com".into(), target.into())),
            ..Self::new()
        }
    }

    /// Records that a pass ended now, by both clocks, as `rotor run` does.
    fn pass_ended_now(&self) {
        *self.last_pass.lock().unwrap() = Some(PassRecord {
            boot: self.clock.boot(),
            ..pass_at(self.clock.now())
        });
    }

    /// One pass; `forced`: as `rotor rotate example.com`.
    fn run(&self, forced: bool) -> Vec<(String, String)> {
        let parts = Parts {
            providers: [(
                "dns".to_string(),
                Box::new(SharedDns(self.dns.clone())) as Box<dyn DnsProvider>,
            )]
            .into(),
            signers: [&self.signer]
                .into_iter()
                .chain(&self.others)
                .enumerate()
                .map(|(n, recorder)| {
                    let signer = Box::new(SharedSigner(recorder.clone())) as Box<dyn Signer>;
                    (format!("mx{}", n + 1), signer)
                })
                .collect(),
            visibility: Box::new(Scripted {
                dns: self.dns.clone(),
                secondary_has_it: self.secondary_has_it.clone(),
                dname: self.dname.clone(),
                lagging_k: self.lagging_k.clone(),
            }),
            calls: Default::default(),
            reports: Vec::new(),
        };
        let forced = if forced {
            ["example.com".to_string()].into()
        } else {
            Default::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let last_pass = *self.last_pass.lock().unwrap();
        let engine =
            Engine::new(&self.config, &self.store, &self.clock, parts).after_pass(last_pass);
        let report = runtime.block_on(engine.run(&forced));
        *self.warnings.lock().unwrap() = report.warnings;
        report
            .failed
            .into_iter()
            .map(|f| (f.domain, f.error))
            .collect()
    }

    fn phases(&self) -> Vec<Phase> {
        self.store.keys().unwrap().iter().map(|k| k.phase).collect()
    }

    fn selectors(&self) -> Vec<String> {
        let mut keys = self.store.keys().unwrap();
        keys.sort_by_key(|k| k.created_at);
        keys.into_iter().map(|k| k.selector).collect()
    }

    fn last_plan(&self) -> SignerPlan {
        self.signer
            .plans
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a signer plan")
    }
}

const HOUR: u64 = 3600;
const DAY: u64 = 86400;

#[test]
fn a_rotation_follows_the_clock_and_the_gates() {
    let w = World::new();
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Published]);
    let first = w.selectors()[0].clone();
    assert_eq!(
        first, "rotor20270115",
        "selector from the template and the clock"
    );
    let name = format!("{first}._domainkey.example.com");
    assert_eq!(w.dns.values(&name).len(), 1);

    // Before min_wait nothing happens, whatever DNS says.
    w.clock.advance(4 * HOUR - 1);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Published]);
    assert!(w.signer.plans.lock().unwrap().is_empty());

    // The secondary lags: checked, held back, checked again only after poll_every.
    w.secondary_has_it.store(false, Ordering::SeqCst);
    w.clock.advance(1);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Published]);
    let checked = w.store.keys().unwrap()[0].last_check.clone().unwrap();
    assert!(!checked.passed());
    w.secondary_has_it.store(true, Ordering::SeqCst);
    w.clock.advance(5 * 60 - 1);
    w.run(false);
    assert_eq!(
        w.phases(),
        [Phase::Published],
        "not polled again before poll_every"
    );
    w.clock.advance(1);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Active]);
    assert_eq!(w.last_plan().signing.len(), 1);

    // Thirty days later the next key comes, and the old one enters its grace window.
    w.clock.advance(30 * DAY);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Active, Phase::Published]);
    w.clock.advance(4 * HOUR);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    let plan = w.last_plan();
    assert_eq!(plan.signing[0].selector, w.selectors()[1]);
    assert_eq!(plan.kept[0].selector, first);
    assert_eq!(w.dns.values(&name).len(), 1, "kept published during grace");

    w.clock.advance(7 * DAY - 1);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    w.clock.advance(1);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Retired, Phase::Active]);
    assert!(
        w.dns.values(&name).is_empty(),
        "the exact record is removed"
    );
    assert_eq!(w.last_plan().removed[0].selector, first);
    assert!(
        !w.store.keys().unwrap()[0].key_file.exists(),
        "private key destroyed"
    );

    let history: Vec<Phase> = w
        .store
        .history("example.com")
        .unwrap()
        .iter()
        .map(|e| e.phase)
        .collect();
    use Phase::*;
    assert_eq!(
        history,
        [
            Generated, Generated, Published, Propagated, Active, Generated, Generated, Published,
            Propagated, Retiring, Active, Retired
        ]
    );
}

/// The domains the store's index says are due now.
fn due_now(w: &World) -> Vec<String> {
    let due = w.store.due(&w.config.fingerprint, w.clock.now()).unwrap();
    due.expect("the index was written for this config")
        .into_iter()
        .collect()
}

#[test]
fn a_pass_plans_the_domains_that_are_due_and_each_gate_opens_on_time() {
    // No recheck in a year: the index alone must bring every step on time.
    let domains = ["a.example.com", "b.example.com"];
    let w = World::with_extra("[rsa-2048]", 1, &domains, "passes: {recheck_every: 365d}\n");
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Published; 2]);
    assert!(due_now(&w).is_empty(), "nothing due before min_wait");
    w.clock.advance(4 * HOUR - 1);
    assert!(due_now(&w).is_empty());
    w.clock.advance(1);
    assert_eq!(due_now(&w), domains, "min_wait has passed");
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Active; 2]);
    assert!(
        due_now(&w).is_empty(),
        "both active: the next rotation is not due"
    );

    // A change made outside the pass (`rotor rotate`, `rotor revoke`, a DMARC report) makes
    // that domain, and only it, due at once.
    let key = w.store.domain_keys("b.example.com").unwrap().remove(0);
    let event = rotor_state::Event {
        at: w.clock.now(),
        domain: key.domain.clone(),
        selector: key.selector.clone(),
        phase: key.phase,
        detail: "noted".into(),
    };
    w.store.commit(&[], &[event]).unwrap();
    assert_eq!(due_now(&w), ["b.example.com"]);
    assert!(w.run(false).is_empty());
    assert!(due_now(&w).is_empty());

    // The next rotation at exactly rotate_every, the old keys retired at exactly grace.
    w.clock.advance(30 * DAY - 1);
    assert!(due_now(&w).is_empty());
    w.run(false);
    assert_eq!(w.phases(), [Phase::Active; 2]);
    w.clock.advance(1);
    assert_eq!(due_now(&w), domains);
    assert!(w.run(false).is_empty());
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    w.clock.advance(7 * DAY - 1);
    w.run(false);
    let retired = |w: &World| w.phases().iter().filter(|p| **p == Phase::Retired).count();
    assert_eq!(retired(&w), 0, "still in grace");
    w.clock.advance(1);
    assert_eq!(due_now(&w), domains, "grace is over");
    assert!(w.run(false).is_empty());
    assert_eq!(retired(&w), 2);
}

#[test]
fn a_config_edit_or_a_clock_gone_back_plans_every_domain() {
    let w = World::with_domains("[rsa-2048]", 1, &["a.example.com"]);
    assert!(w.run(false).is_empty());
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    let due = w.store.due(&w.config.fingerprint, w.clock.now()).unwrap();
    assert_eq!(due.map(|d| d.len()), Some(0));
    // Another config (or another rotor) cannot trust the index.
    assert_eq!(w.store.due("another", w.clock.now()).unwrap(), None);
    // A clock behind the last pass: the index's times were read off another clock.
    *w.last_pass.lock().unwrap() = Some(pass_at(w.clock.now() + DAY));
    let (planned, every) = {
        let parts = Parts {
            providers: Default::default(),
            signers: Default::default(),
            visibility: Box::new(Scripted {
                dns: w.dns.clone(),
                secondary_has_it: w.secondary_has_it.clone(),
                dname: None,
                lagging_k: w.lagging_k.clone(),
            }),
            calls: Default::default(),
            reports: Vec::new(),
        };
        let engine = Engine::new(&w.config, &w.store, &w.clock, parts)
            .after_pass(Some(pass_at(w.clock.now() + DAY)));
        let (planned, every) = engine.due_domains(&Default::default());
        (planned.len(), every)
    };
    assert_eq!((planned, every), (1, true));
}

#[test]
fn domains_that_switch_in_one_pass_share_one_switch_per_signer() {
    let domains = ["a.example.com", "b.example.com", "example.com"];
    let w = World::with_domains("[rsa-2048]", 2, &domains);
    let failed = w.run(false);
    assert!(failed.is_empty(), "{failed:?}");
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Active; 3]);
    for signer in [&w.signer, &w.others[0]] {
        assert_eq!(
            signer.switches.load(Ordering::SeqCst),
            1,
            "one switch (one rewrite, one reload) per signer for all three domains"
        );
        let mut switched: Vec<String> = signer
            .plans
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.domain.clone())
            .collect();
        switched.sort();
        assert_eq!(switched, domains);
    }

    // The next rotation: all three retire together after grace, again one switch each.
    w.clock.advance(30 * DAY);
    assert!(w.run(false).is_empty());
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    assert_eq!(w.signer.switches.load(Ordering::SeqCst), 2);
    w.clock.advance(7 * DAY);
    assert!(w.run(false).is_empty());
    assert_eq!(w.signer.switches.load(Ordering::SeqCst), 3);
    let retired = w
        .store
        .keys()
        .unwrap()
        .iter()
        .filter(|k| k.phase == Phase::Retired)
        .count();
    assert_eq!(retired, 3);
}

#[test]
fn a_signer_that_fails_a_batch_fails_every_domain_of_it_and_keeps_their_old_keys() {
    let domains = ["a.example.com", "example.com"];
    let w = World::with_domains("[rsa-2048]", 2, &domains);
    let failed = w.run(false);
    assert!(failed.is_empty(), "{failed:?}");
    w.clock.advance(4 * HOUR);
    w.others[0].fail.store(true, Ordering::SeqCst);
    let failed = w.run(false);
    let mut failed_domains: Vec<&str> = failed.iter().map(|(d, _)| d.as_str()).collect();
    failed_domains.sort();
    assert_eq!(failed_domains, domains, "{failed:?}");
    assert!(
        failed.iter().all(|(_, e)| e.contains("signer mx2")),
        "{failed:?}"
    );
    assert_eq!(
        w.phases(),
        [Phase::Propagated; 2],
        "no key is active while a signer failed to switch to it"
    );
    for key in w.store.keys().unwrap() {
        assert!(
            key.signers["mx2"].starts_with("failed"),
            "{:?}",
            key.signers
        );
        assert_eq!(key.signers["mx1"], "signing");
    }
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Active; 2]);
    assert_eq!(
        w.others[0].switches.load(Ordering::SeqCst),
        1,
        "the failed batch did not count; the retry is one switch for both"
    );
}

#[test]
fn a_failed_provider_call_keeps_the_phase_and_the_next_run_finishes_it() {
    let w = World::new();
    w.dns.fail.store(true, Ordering::SeqCst);
    let failed = w.run(false);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].1.contains("SERVFAIL"), "{failed:?}");
    let key = &w.store.keys().unwrap()[0];
    assert_eq!(key.phase, Phase::Generated);
    assert_eq!(
        key.intent,
        Some(rotor_state::Action::Publish),
        "the interrupted step is resumed first"
    );
    assert!(key.error.as_deref().unwrap().contains("SERVFAIL"));

    assert!(w.run(false).is_empty());
    let key = &w.store.keys().unwrap()[0];
    assert_eq!(
        (key.phase, key.error.clone(), key.intent),
        (Phase::Published, None, None)
    );
    assert_eq!(w.dns.values(&key.record_name()).len(), 1);
}

#[test]
fn a_failed_signer_reload_leaves_the_old_key_signing() {
    let w = World::new();
    w.run(false);
    w.clock.advance(4 * HOUR);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Active]);
    w.run(true);
    w.clock.advance(4 * HOUR);
    w.signer.fail.store(true, Ordering::SeqCst);
    let failed = w.run(false);
    assert!(failed[0].1.contains("reload failed"), "{failed:?}");
    assert_eq!(
        w.phases(),
        [Phase::Active, Phase::Propagated],
        "nothing switched"
    );
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
}

#[test]
fn a_forced_rotation_never_starts_twice() {
    let w = World::new();
    w.run(true);
    w.run(true);
    assert_eq!(w.phases(), [Phase::Published]);
}

#[test]
fn a_delegated_selector_is_written_at_the_alias_target() {
    let w = World::delegated_to("example-com.keys.example.com");
    assert!(w.run(false).is_empty());
    let selector = w.selectors()[0].clone();
    let target = format!("{selector}.example-com.keys.example.com");
    assert_eq!(w.dns.values(&target).len(), 1, "written at the target");
    assert!(
        w.dns
            .values(&format!("{selector}._domainkey.example.com"))
            .is_empty(),
        "nothing at the alias"
    );
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    assert_eq!(
        w.phases(),
        [Phase::Active],
        "the check asked for the target"
    );
    assert_eq!(w.last_plan().signing[0].selector, selector);

    // The next rotation retires the old key at its target, by exact value.
    w.clock.advance(30 * DAY);
    w.run(false);
    w.clock.advance(4 * HOUR);
    w.run(false);
    w.clock.advance(7 * DAY);
    w.run(false);
    assert!(w.dns.values(&target).is_empty(), "retired at the target");
}

#[test]
fn a_selector_delegated_outside_the_providers_zones_is_refused() {
    let w = World::delegated_to("example-com.keys.elsewhere.net");
    let failed = w.run(false);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (domain, error) = &failed[0];
    assert_eq!(domain, "example.com");
    assert!(
        error.contains("is an alias of rotor20270115.example-com.keys.elsewhere.net")
            && error.contains("provider dns does not manage"),
        "{error}"
    );
    assert!(w.store.keys().unwrap().is_empty(), "nothing reserved");
    assert!(w.dns.records.lock().unwrap().is_empty(), "nothing written");
}

#[test]
fn rsa_and_ed25519_keys_switch_together() {
    let w = World::with("[rsa-2048, ed25519]", 1);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Published, Phase::Published]);
    // Only the RSA record is visible at first: it waits for the Ed25519 one.
    *w.lagging_k.lock().unwrap() = Some("ed25519".into());
    w.clock.advance(4 * HOUR);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Propagated, Phase::Published]);
    assert!(w.signer.plans.lock().unwrap().is_empty());
    *w.lagging_k.lock().unwrap() = None;
    w.clock.advance(5 * 60);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Active, Phase::Active]);
    let plans = w.signer.plans.lock().unwrap();
    assert_eq!(plans.len(), 1, "one switch for both keys");
    let algorithms: Vec<String> = plans[0]
        .signing
        .iter()
        .map(|k| k.algorithm.to_string())
        .collect();
    assert_eq!(algorithms, ["rsa-2048", "ed25519"]);
}

#[test]
fn a_signer_that_fails_is_named_and_the_switch_is_retried() {
    let w = World::with("[rsa-2048]", 2);
    w.run(false);
    w.clock.advance(4 * HOUR);
    w.others[0].fail.store(true, Ordering::SeqCst);
    let failed = w.run(false);
    assert!(
        failed[0].1.contains("signer mx2: reload failed"),
        "{failed:?}"
    );
    assert_eq!(w.phases(), [Phase::Propagated], "the rotation waits");
    let key = &w.store.keys().unwrap()[0];
    assert_eq!(key.signers["mx1"], "signing");
    assert!(
        key.signers["mx2"].starts_with("failed"),
        "{:?}",
        key.signers
    );

    assert!(w.run(false).is_empty());
    let key = &w.store.keys().unwrap()[0];
    assert_eq!(key.phase, Phase::Active);
    assert!(key.signers.values().all(|state| state == "signing"));
}

#[test]
fn signers_switch_only_inside_the_activation_window() {
    let mut w = World::new();
    std::sync::Arc::make_mut(&mut w.config.domains[0].policy).activate_window =
        Some("Mon-Fri 04:00-06:00".parse().unwrap());
    // Friday 2027-01-15 08:00 UTC: published now, visible four hours later, but the window
    // opened at 04:00 and closed at 06:00.
    w.run(false);
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Propagated]);
    assert!(w.signer.plans.lock().unwrap().is_empty(), "no switch");
    let keys = w.store.keys().unwrap();
    let keys = crate::plan::ByDomain::new(&keys);
    let rows = crate::status::rows(
        &w.config.domains.iter().collect::<Vec<_>>(),
        &keys,
        &Default::default(),
        false,
        w.clock.now(),
    );
    assert_eq!(
        rows[0].waiting_for.as_deref(),
        Some("waiting for window Mon-Fri 04:00-06:00 (UTC)")
    );
    assert_eq!(rows[0].next_at.as_deref(), Some("2027-01-18T04:00:00Z"));

    // Monday 04:00: the window opens and the signer switches.
    w.clock.advance(2 * DAY + 16 * HOUR);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Active]);
}

#[test]
fn a_selector_ring_reuses_a_name_once_its_key_is_retired() {
    let mut w = World::new();
    std::sync::Arc::make_mut(&mut w.config.domains[0].policy).selector_ring =
        vec!["a".parse().unwrap(), "b".parse().unwrap()];
    let activate = |w: &World| {
        w.clock.advance(4 * HOUR);
        assert!(w.run(false).is_empty());
    };
    w.run(false);
    activate(&w);
    assert_eq!(w.selectors(), ["a"]);
    w.run(true);
    activate(&w);
    assert_eq!(w.selectors(), ["a", "b"]);
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);

    // While "a" is still in its grace window, no name is free: the rotation is refused.
    let failed = w.run(true);
    assert!(
        failed[0]
            .1
            .contains("every selector of the ring (a, b) belongs to a key not yet retired"),
        "{failed:?}"
    );
    // Once "a" is retired, its name serves the next key, and its record is replaced.
    w.clock.advance(7 * DAY);
    w.run(false);
    assert_eq!(w.phases(), [Phase::Retired, Phase::Active]);
    w.run(true);
    activate(&w);
    let keys = w.store.keys().unwrap();
    let a = keys.iter().find(|k| k.selector == "a").unwrap();
    assert_eq!(a.phase, Phase::Active);
    assert_eq!(
        w.dns.values("a._domainkey.example.com").len(),
        1,
        "one record at the reused name"
    );
    let history = w.store.history("example.com").unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.selector == "a" && e.detail.starts_with("rotation started"))
            .count(),
        2,
        "both lives of the name are in the history"
    );
}

/// One pass publishes the first key, the next (after `min_wait`) activates it.
fn first_key_active(w: &World) {
    w.run(false);
    w.clock.advance(4 * HOUR);
    w.run(false);
}

/// A forced rotation, then (after `min_wait`) the pass that switches to the new key.
fn next_key_active(w: &World) {
    w.run(true);
    w.clock.advance(4 * HOUR);
    w.run(false);
}

/// A world whose first key was replaced now: the old key is in its grace window.
fn a_key_replaced() -> World {
    let w = World::new();
    first_key_active(&w);
    next_key_active(&w);
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    w
}

/// Marks `selector` leaked, as `rotor revoke` does.
fn compromise(w: &World, selector: &str, force: bool) {
    let keys = w.store.keys().unwrap();
    let key = keys.iter().find(|k| k.selector == selector).unwrap();
    let compromise = rotor_state::Compromise {
        reason: "leaked".into(),
        at: w.clock.now(),
        skip_min_wait: false,
    };
    let marked = crate::plan::lifecycle::mark_compromised(key, compromise, force, w.clock.now());
    w.store.commit(&[(Some(key), &marked)], &[]).unwrap();
}

/// The selectors the signer signs with (and keeps) in its last plan.
fn signed_with(w: &World) -> (Vec<String>, Vec<String>) {
    let plan = w.last_plan();
    let names =
        |keys: &[rotor_signers::SignerKey]| keys.iter().map(|k| k.selector.clone()).collect();
    (names(&plan.signing), names(&plan.kept))
}

/// The reproduced defect: a new key whose activation failed (its Activate intent pending) and
/// that is then reported leaked must never become active, whatever step was under way.
#[test]
fn a_leaked_key_whose_activation_was_under_way_is_never_activated() {
    let w = World::new();
    first_key_active(&w);
    let good = w.selectors()[0].clone();
    w.run(true);
    w.clock.advance(4 * HOUR);
    w.signer.fail.store(true, Ordering::SeqCst);
    assert!(!w.run(false).is_empty(), "the reload fails");
    let leaked = w.selectors()[1].clone();
    let key = w.store.keys().unwrap()[1].clone();
    assert_eq!(
        (key.phase, key.intent),
        (Phase::Propagated, Some(rotor_state::Action::Activate))
    );
    compromise(&w, &leaked, false);
    assert!(w.run(false).is_empty());
    let keys = w.store.keys().unwrap();
    let phase = |s: &str| keys.iter().find(|k| k.selector == s).unwrap().phase;
    assert_eq!(phase(&good), Phase::Active, "the good key keeps signing");
    assert_eq!(phase(&leaked), Phase::Revoked);
    assert_eq!(signed_with(&w), (vec![good], vec![]));
    let record = keys
        .iter()
        .find(|k| k.selector == leaked)
        .unwrap()
        .record_name();
    assert_eq!(
        w.dns.values(&record),
        [DkimRecord::revoked(crate::keys::KeyAlgorithm::Rsa2048).to_string()]
    );
}

#[test]
fn a_leaked_key_under_publication_or_generation_is_revoked_not_published() {
    for pending in [
        rotor_state::Action::Publish,
        rotor_state::Action::GenerateKey,
    ] {
        let w = World::new();
        w.run(false);
        w.clock.advance(4 * HOUR);
        w.run(false);
        w.run(true);
        let keys = w.store.keys().unwrap();
        let new = keys.iter().find(|k| k.phase == Phase::Published).unwrap();
        // As if the run died with this step under way.
        let interrupted = rotor_state::KeyRecord {
            phase: Phase::Generated,
            intent: Some(pending),
            record: (pending == rotor_state::Action::Publish)
                .then(|| new.record.clone())
                .flatten(),
            ..new.clone()
        };
        w.store.commit(&[(Some(new), &interrupted)], &[]).unwrap();
        compromise(&w, &new.selector, false);
        w.clock.advance(4 * HOUR);
        assert!(w.run(false).is_empty(), "{pending:?}");
        let keys = w.store.keys().unwrap();
        let leaked = keys.iter().find(|k| k.selector == new.selector).unwrap();
        assert_eq!(leaked.phase, Phase::Revoked, "{pending:?}");
        assert!(!leaked.key_file.exists(), "its private key is destroyed");
        assert!(
            w.signer
                .plans
                .lock()
                .unwrap()
                .iter()
                .all(|plan| plan.installed().all(|k| k.selector != new.selector)),
            "{pending:?}: never given to a signer"
        );
    }
}

#[test]
fn a_leaked_key_is_not_kept_in_the_signers_once_replaced() {
    let w = World::new();
    first_key_active(&w);
    let leaked = w.selectors()[0].clone();
    compromise(&w, &leaked, false);
    w.run(false);
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    let plans = w.signer.plans.lock().unwrap();
    let switch = plans
        .iter()
        .find(|plan| plan.signing.iter().any(|k| k.selector != leaked))
        .expect("the replacement was switched to");
    assert!(
        switch.kept.is_empty() && switch.removed.iter().any(|k| k.selector == leaked),
        "the leaked key leaves the signer in the same switch: {switch:?}"
    );
}

#[test]
fn a_record_removed_while_waiting_for_the_window_is_not_activated() {
    let mut w = World::new();
    std::sync::Arc::make_mut(&mut w.config.domains[0].policy).activate_window =
        Some("Mon-Fri 04:00-06:00".parse().unwrap());
    w.run(false);
    w.clock.advance(4 * HOUR);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Propagated]);
    // Someone deletes the record while the window is closed.
    w.dns.records.lock().unwrap().clear();
    w.clock.advance(2 * DAY + 16 * HOUR);
    let failed = w.run(false);
    assert!(
        failed[0].1.contains("no longer visible everywhere"),
        "{failed:?}"
    );
    assert_eq!(w.phases(), [Phase::Propagated]);
    assert!(w.signer.plans.lock().unwrap().is_empty(), "no switch");
}

#[test]
fn a_replaced_private_key_is_never_given_to_a_signer() {
    let w = World::new();
    w.run(false);
    let key = w.store.keys().unwrap()[0].clone();
    // Someone with access to rotor's key directory swaps the key after it was published.
    let other = crate::keys::PrivateKey::generate(crate::keys::KeyAlgorithm::Rsa2048).unwrap();
    std::fs::write(&key.key_file, other.pem().as_bytes()).unwrap();
    w.clock.advance(4 * HOUR);
    let failed = w.run(false);
    assert!(
        failed[0].1.contains("does not match the record"),
        "{failed:?}"
    );
    assert!(w.signer.plans.lock().unwrap().is_empty());
    assert_eq!(w.phases(), [Phase::Propagated]);
}

#[test]
fn a_provider_that_claims_a_removal_it_did_not_make_does_not_retire_the_key() {
    let w = a_key_replaced();
    w.dns.ignore_deletes.store(true, Ordering::SeqCst);
    w.clock.advance(7 * DAY);
    let failed = w.run(false);
    assert!(failed[0].1.contains("still holds the record"), "{failed:?}");
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    w.dns.ignore_deletes.store(false, Ordering::SeqCst);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Retired, Phase::Active]);
}

#[test]
fn a_foreign_dkim_record_holds_back_only_its_own_domain() {
    let mut w = World::new();
    let yaml = format!(
        "state_dir: {d}/state\nkey_dir: {d}/keys\ndefaults:\n  rotate_every: 30d\n  grace: 7d\n  propagation: {{min_wait: 4h, poll_every: 5m, timeout: 48h}}\nproviders:\n  dns: {{type: rfc2136, server: 127.0.0.1}}\nsigners:\n  mx1: {{type: exim, table: /t, key_dir: /kd}}\ndomains:\n  - {{name: example.com, provider: dns, signers: [mx1], zone: example.com}}\n  - {{name: mail.example.com, provider: dns, signers: [mx1], zone: example.com}}\n",
        d = w._dir.path().display()
    );
    w.config = Config::parse(&yaml, Path::new("test.yaml")).unwrap();
    // The first pass reserves both selectors, then its publish fails.
    w.dns.fail.store(true, Ordering::SeqCst);
    assert_eq!(w.run(false).len(), 2);
    // Meanwhile someone else puts a DKIM key at mail.example.com's new selector.
    let name = "rotor20270115._domainkey.mail.example.com";
    w.dns.records.lock().unwrap().insert(
        name.into(),
        vec![TxtValue::from_value("v=DKIM1; k=rsa; p=MIIBforeign")],
    );
    let failed = w.run(false);
    let keys = w.store.keys().unwrap();
    let phase = |domain: &str| keys.iter().find(|k| k.domain == domain).map(|k| k.phase);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "mail.example.com");
    assert!(failed[0].1.contains("rotor did not publish"), "{failed:?}");
    assert_eq!(phase("mail.example.com"), Some(Phase::Generated));
    assert_eq!(phase("example.com"), Some(Phase::Published), "{failed:?}");
    assert_eq!(
        w.dns.values(name),
        ["v=DKIM1; k=rsa; p=MIIBforeign"],
        "the foreign record is untouched"
    );
}

#[test]
fn a_signer_taken_out_of_the_domain_still_has_the_old_key_removed() {
    let run_to_retirement = |keep_mx2_configured: bool| {
        let mut w = World::with("[rsa-2048]", 2);
        w.run(false);
        w.clock.advance(4 * HOUR);
        w.run(false);
        let first = w.selectors()[0].clone();
        // mx2 no longer signs example.com.
        w.config.domains[0].signers = vec!["mx1".into()];
        if !keep_mx2_configured {
            w.others.clear();
        }
        w.run(true);
        w.clock.advance(4 * HOUR);
        assert!(w.run(false).is_empty());
        w.clock.advance(7 * DAY);
        (w.run(false), w, first)
    };
    let (failed, w, first) = run_to_retirement(true);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(w.phases(), [Phase::Retired, Phase::Active]);
    let plans = w.others[0].plans.lock().unwrap();
    let last = plans.last().unwrap();
    assert!(
        last.removed.iter().any(|k| k.selector == first) && last.installed().count() == 0,
        "mx2 was told to drop the old key: {last:?}"
    );

    let (failed, w, first) = run_to_retirement(false);
    assert!(
        failed[0].1.contains("signer mx2 held") && failed[0].1.contains(&first),
        "{failed:?}"
    );
    assert_eq!(
        w.phases(),
        [Phase::Retiring, Phase::Active],
        "held: its record stays"
    );
}

#[test]
fn a_clock_that_jumps_holds_the_end_of_grace_windows() {
    let w = a_key_replaced();
    let switched = w.clock.now();

    // The clock jumps 8 days ahead of the last pass (grace is 7 days): held, with a warning.
    *w.last_pass.lock().unwrap() = Some(pass_at(switched));
    w.clock.advance(8 * DAY);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    let warnings = w.warnings.lock().unwrap().clone();
    assert!(
        warnings[0].contains("held for this pass")
            && warnings[0].contains("more than the grace window"),
        "{warnings:?}"
    );
    // A clock behind the last pass holds it too.
    *w.last_pass.lock().unwrap() = Some(pass_at(w.clock.now() + HOUR));
    w.run(false);
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    assert!(w.warnings.lock().unwrap()[0].contains("is behind the last pass"));
    // The next pass with a clock that moved as it should retires the key.
    *w.last_pass.lock().unwrap() = Some(pass_at(w.clock.now() - 60));
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Retired, Phase::Active]);
    assert!(w.warnings.lock().unwrap().is_empty());
}

#[test]
fn on_one_boot_a_long_wait_ends_the_grace_window_and_a_jump_holds_it() {
    let w = a_key_replaced();
    // The wall clock is set 8 days ahead (grace is 7 days) while the machine counted a minute.
    w.pass_ended_now();
    w.clock.advance(60);
    w.clock.jump(8 * DAY);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Retiring, Phase::Active]);
    let warnings = w.warnings.lock().unwrap().clone();
    assert!(
        warnings[0].contains("held for this pass") && warnings[0].contains("it jumped"),
        "{warnings:?}"
    );
    // A few seconds of drift is no jump: nothing is held for it, nor warned.
    w.pass_ended_now();
    w.clock.advance(3600);
    w.clock.jump(30);
    assert!(w.run(false).is_empty());
    assert!(w.warnings.lock().unwrap().is_empty());

    // Timers far apart: the last pass ended 8 days ago by both clocks. Not a jump: the key
    // whose grace window ended is retired.
    let w = a_key_replaced();
    w.pass_ended_now();
    w.clock.advance(8 * DAY);
    assert!(w.run(false).is_empty());
    assert_eq!(w.phases(), [Phase::Retired, Phase::Active]);
    assert!(w.warnings.lock().unwrap().is_empty());
}
