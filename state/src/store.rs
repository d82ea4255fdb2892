//! The store rotor's engine uses: one API over every backend (see [`crate::backend`]), with
//! what does not depend on the backend: a large commit split into transactions of whole
//! domains, and what was committed since the store was opened.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rotor_common::crashpoint;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::model::{BootClock, DkimDay, Event, KeyRecord, PassRecord, SeenReport};
use crate::postgres::{Postgres, PostgresSettings};
use crate::sled::{Sled, backup};
use crate::snapshot::Snapshot;

/// How many domains one transaction of [`Store::commit`] writes at most.
pub const DOMAINS_PER_COMMIT: usize = 256;

/// Where the store is, as the config names it.
#[derive(Clone, Debug)]
pub enum Location {
    /// sled, in this directory (the default: `state_dir/store`).
    Sled(PathBuf),
    /// A PostgreSQL database, shared by the rotors of several hosts.
    Postgres(PostgresSettings),
}

impl Location {
    /// Opens the store for a pass: sled waiting up to `timeout` while another process has it
    /// open (`on_wait` called once, when the wait starts).
    pub fn open_waiting(
        &self,
        timeout: Duration,
        on_wait: impl FnMut(),
    ) -> Result<Store, StoreError> {
        match self {
            Self::Sled(dir) => Store::open_waiting(dir, timeout, on_wait),
            Self::Postgres(settings) => Store::connect(settings),
        }
    }

    /// What readers see (see [`Store::read`]), never stopping a pass: of a sled store held by
    /// one, what it published (waiting up to `timeout` for a first publication). `None`: no
    /// store yet (a sled directory that does not exist; nothing is created).
    pub fn read(
        &self,
        domains: Option<&[&str]>,
        history: bool,
        timeout: Duration,
    ) -> Result<Option<Snapshot>, StoreError> {
        match self {
            Self::Sled(dir) if !dir.exists() => Ok(None),
            Self::Sled(dir) => match domains {
                Some(domains) => Snapshot::read_domains(dir, timeout, domains, history),
                None if history => Snapshot::read(dir, timeout),
                None => Snapshot::read_present(dir, timeout),
            }
            .map(Some),
            Self::Postgres(settings) => {
                let store = Postgres::open(settings, false)?;
                if store.empty {
                    return Ok(None);
                }
                let store = Store::new(Box::new(store));
                let snapshot = store.read(domains, history)?;
                store.close()?;
                Ok(Some(snapshot))
            }
        }
    }
}

/// The store: key records, their history, the index of due domains and DMARC evidence.
pub struct Store {
    backend: Box<dyn Backend>,
    /// Set by the first commit of a key, an event or evidence since the store was opened.
    changed: AtomicBool,
    /// The events committed since the store was opened, in order.
    committed: Mutex<Vec<Event>>,
}

impl Store {
    fn new(backend: Box<dyn Backend>) -> Self {
        Self {
            backend,
            changed: AtomicBool::new(false),
            committed: Mutex::default(),
        }
    }

    /// Opens (or creates) the sled store in `dir`. Refuses a damaged store
    /// ([`StoreError::Damaged`]) before changing anything; brings a store of an older rotor to
    /// the current layout; tidies what an interrupted backup left; publishes the readers'
    /// [`crate::Snapshot`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Ok(Self::new(Box::new(Sled::open(dir)?)))
    }

    /// Connects to the PostgreSQL store `settings` name, bringing its schema to this rotor's
    /// version (a schema of a newer rotor is refused, untouched).
    pub fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        Ok(Self::new(Box::new(Postgres::open(settings, true)?)))
    }

    /// What readers see of the store: the keys, the evidence and the last pass, as of one
    /// commit; of `domains` only when given (a domain without records is left out), the
    /// history only with `history`.
    pub fn read(&self, domains: Option<&[&str]>, history: bool) -> Result<Snapshot, StoreError> {
        self.backend.read(domains, history)
    }

    /// [`Store::open`], waiting up to `timeout` while another process has the store open
    /// (retrying with a short backoff); `on_wait` is called once, when the wait starts.
    pub fn open_waiting(
        dir: &Path,
        timeout: Duration,
        on_wait: impl FnMut(),
    ) -> Result<Self, StoreError> {
        Ok(Self::new(Box::new(Sled::open_waiting(
            dir, timeout, on_wait,
        )?)))
    }

    /// Whether the last writer closed the store cleanly during this boot: no run died with it
    /// open since (which may have left temporary files behind), and no power was lost.
    pub fn closed_cleanly(&self) -> bool {
        self.backend.closed_cleanly()
    }

    /// Whether anything was committed (a key, an event, DMARC evidence) since the store was
    /// opened.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::SeqCst)
    }

    /// The history events committed since the store was opened, oldest first.
    pub fn committed_events(&self) -> Vec<Event> {
        self.committed
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }

    /// Flushes and closes the store (releasing its lock). Call [`Store::back_up`] afterwards to
    /// keep a copy of a sled store.
    pub fn close(self) -> Result<(), StoreError> {
        self.backend.close()
    }

    /// Copies the closed sled store in `dir` to [`Store::backup_path`] atomically: a complete
    /// copy flushed to disk is renamed in, and the previous backup removed only then, so a
    /// crash at any point leaves a complete backup. [`StoreError::Busy`] while the store is
    /// open.
    pub fn back_up(dir: &Path) -> Result<(), StoreError> {
        backup::back_up(dir)
    }

    /// Where [`Store::back_up`] keeps its copy: `<dir>.backup`.
    pub fn backup_path(dir: &Path) -> PathBuf {
        backup::backup_path(dir)
    }

    /// Every key record, ordered by domain, then selector.
    pub fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.backend.keys()
    }

    /// The key records of one domain, ordered by selector.
    pub fn domain_keys(&self, domain: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.backend.domain_keys(domain)
    }

    /// The history of one domain, oldest first.
    pub fn history(&self, domain: &str) -> Result<Vec<Event>, StoreError> {
        self.backend.history(domain)
    }

    /// The last pass recorded with [`Store::record_pass`].
    pub fn last_pass(&self) -> Result<Option<PassRecord>, StoreError> {
        self.backend.last_pass()
    }

    /// Records a pass that ended at `at` (Unix seconds; `boot` on the boot clock), durable
    /// before it returns; returns the record, whose `last_success` carries over from the
    /// passes before.
    pub fn record_pass(
        &self,
        at: u64,
        boot: Option<BootClock>,
        success: bool,
    ) -> Result<PassRecord, StoreError> {
        self.backend.record_pass(at, boot, success)
    }

    /// Writes every `(before, after)` pair, each only if the stored record still equals
    /// `before` (`None`: the key must not exist yet), and appends `events`; durable before it
    /// returns. Every domain it touches is due at once.
    ///
    /// All or nothing for each domain: a domain's changes and events are written together, and
    /// up to [`DOMAINS_PER_COMMIT`] domains in one transaction. A larger commit is written as
    /// several, domain by domain in order, and an error stops it where it is, with the earlier
    /// ones written, as a crash between them would leave it. (sled keeps every page a
    /// transaction replaces until it ends: one transaction over a first pass of 10,000 domains
    /// would hold hundreds of megabytes.)
    pub fn commit(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
    ) -> Result<(), StoreError> {
        let domains = domains_of(changes, events);
        if domains.len() <= DOMAINS_PER_COMMIT {
            return self.transact(changes, events, &domains);
        }
        for (index, part) in domains.chunks(DOMAINS_PER_COMMIT).enumerate() {
            if index > 0 {
                crashpoint::hit("commit", "part");
            }
            let within = |domain: &str| part.binary_search(&domain).is_ok();
            let changes: Vec<_> = changes
                .iter()
                .filter(|(_, after)| within(&after.domain))
                .copied()
                .collect();
            let events: Vec<Event> = events
                .iter()
                .filter(|event| within(&event.domain))
                .cloned()
                .collect();
            self.transact(&changes, &events, part)?;
        }
        Ok(())
    }

    /// One transaction of [`Store::commit`], then what it committed noted.
    fn transact(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
        domains: &[&str],
    ) -> Result<(), StoreError> {
        self.backend.transact(changes, events, domains)?;
        self.changed.store(true, Ordering::SeqCst);
        if let Ok(mut committed) = self.committed.lock() {
            committed.extend_from_slice(events);
        }
        Ok(())
    }

    /// Takes the leases of those of `domains` that no other instance sharing the store holds,
    /// for `ttl` and renewed while the store is open (given back when it is closed); returns
    /// the domains leased (sorted), the only ones this instance may work on now. Each later commit of
    /// a leased domain carries its lease's fencing token and is refused
    /// ([`StoreError::Fenced`]) if the lease moved on meanwhile (this instance stalled past
    /// `ttl` and another took the domain). A sled store, of one host, leases every domain.
    pub fn lease(&self, domains: &[&str], ttl: Duration) -> Result<Vec<String>, StoreError> {
        let mut leased = self.backend.lease(domains, ttl)?;
        leased.sort_unstable();
        leased.dedup();
        Ok(leased)
    }

    /// The domains due by `now` (Unix seconds), per the index written for `fingerprint`;
    /// `None` when the index cannot tell (written for another fingerprint, or never): then every
    /// domain is to be planned.
    pub fn due(&self, fingerprint: &str, now: u64) -> Result<Option<BTreeSet<String>>, StoreError> {
        self.backend.due(fingerprint, now)
    }

    /// Records when each domain of `due` next needs a pass, for plans made with `fingerprint`.
    /// With `every` (the pass planned every domain of the config), the entries of domains not in
    /// `due` (gone from the config) are dropped. Durable before it returns.
    pub fn set_due(
        &self,
        fingerprint: &str,
        due: &[(&str, u64)],
        every: bool,
    ) -> Result<(), StoreError> {
        self.backend.set_due(fingerprint, due, every)
    }

    /// Counts `report`'s `days` (adding to what earlier reports said of each selector and day),
    /// unless a report with the same organisation and id was counted already: then nothing
    /// changes and `false` is returned. All or nothing, durable before it returns; the domains
    /// it speaks of are due at once.
    pub fn record_report(&self, report: &SeenReport, days: &[DkimDay]) -> Result<bool, StoreError> {
        let counted = self.backend.record_report(report, days)?;
        if counted {
            self.changed.store(true, Ordering::SeqCst);
        }
        Ok(counted)
    }

    /// What the reports said of `domain`'s selectors, by selector, then day.
    pub fn dkim_days(&self, domain: &str) -> Result<Vec<DkimDay>, StoreError> {
        self.backend.dkim_days(domain)
    }

    /// Every report counted, by organisation and id.
    pub fn seen_reports(&self) -> Result<Vec<SeenReport>, StoreError> {
        self.backend.seen_reports()
    }
}

/// The domains of `changes` and `events`, sorted, each once.
pub(crate) fn domains_of<'a>(
    changes: &[(Option<&KeyRecord>, &'a KeyRecord)],
    events: &'a [Event],
) -> Vec<&'a str> {
    let mut domains: Vec<&str> = changes
        .iter()
        .map(|(_, after)| after.domain.as_str())
        .chain(events.iter().map(|event| event.domain.as_str()))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    domains
}
