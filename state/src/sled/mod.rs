//! The sled-backed store: key records, their history, and rotor's own notes about the store
//! (the `meta` tree: the layout's version, the record counts, the last pass).

pub(crate) mod backup;
mod due;
pub(crate) mod durable;
mod evidence;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::sled::Transactional;
use ::sled::transaction::{ConflictableTransactionError, TransactionError};
use serde::{Deserialize, Serialize};

use crate::sled::due::mark_due_now;
use crate::sled::durable::replace_file;
use std::collections::BTreeSet;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::model::{BootClock, DkimDay, Event, KeyRecord, PassRecord, SeenReport};
use crate::snapshot::{self, DomainSnapshot, Journal, Snapshot};

/// The layout this rotor writes. 1: no `meta` tree (records may lack fields added since, which
/// serde defaults fill in); 2: the `meta` tree, records rewritten in the current layout.
const SCHEMA: u64 = 2;
/// The most sled keeps of the store in memory: enough for a pass's working set at 100,000
/// domains, far less than the whole store.
const CACHE_BYTES: u64 = 64 << 20;
/// How long [`Sled::open`] waits for a store that was just closed to be let go of.
const RELEASE: Duration = Duration::from_secs(2);
const SCHEMA_KEY: &[u8] = b"schema";
const COUNTS_KEY: &[u8] = b"counts";
const LAST_PASS_KEY: &[u8] = b"last_pass";

/// How many records the store holds. Records are never removed, so fewer than before means
/// sled dropped data while recovering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    keys: u64,
    events: u64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} keys and {} history events", self.keys, self.events)
    }
}

/// The store: key records and their history, in one directory.
pub struct Sled {
    path: PathBuf,
    pub(crate) db: ::sled::Db,
    keys: ::sled::Tree,
    history: ::sled::Tree,
    pub(crate) meta: ::sled::Tree,
    /// When each domain is next due, by time (`due.rs`).
    pub(crate) due: ::sled::Tree,
    /// When each domain is next due, by domain (`due.rs`).
    pub(crate) due_at: ::sled::Tree,
    /// DMARC evidence: the reports counted, and DKIM results per selector and day
    /// (`evidence.rs`).
    pub(crate) reports: ::sled::Tree,
    /// Set when publishing the readers' snapshot failed: closing publishes it whole (and
    /// reports the failure then).
    stale: AtomicBool,
    /// Where the readers' journal is (`None` until something is published, or after a
    /// publication failed: the next one publishes everything).
    journal: Mutex<Option<Journal>>,
    /// Opened by a writer ([`Sled::open`]), which keeps the snapshot published: closing marks
    /// it complete.
    writer: bool,
    /// The last writer closed the store cleanly, during this boot (see [`Sled::closed_cleanly`]).
    clean: bool,
}

fn key_id(domain: &str, selector: &str) -> Vec<u8> {
    [domain.as_bytes(), b"\0", selector.as_bytes()].concat()
}

fn domain_prefix(domain: &str) -> Vec<u8> {
    [domain.as_bytes(), b"\0"].concat()
}

impl Backend for Sled {
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Sled::keys(self)
    }
    fn domain_keys(&self, domain: &str) -> Result<Vec<KeyRecord>, StoreError> {
        Sled::domain_keys(self, domain)
    }
    fn history(&self, domain: &str) -> Result<Vec<Event>, StoreError> {
        Sled::history(self, domain)
    }
    fn last_pass(&self) -> Result<Option<PassRecord>, StoreError> {
        Sled::last_pass(self)
    }
    fn record_pass(
        &self,
        at: u64,
        boot: Option<BootClock>,
        success: bool,
    ) -> Result<PassRecord, StoreError> {
        Sled::record_pass(self, at, boot, success)
    }
    fn transact(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
        domains: &[&str],
    ) -> Result<(), StoreError> {
        Sled::transact(self, changes, events, domains)
    }
    fn due(&self, fingerprint: &str, now: u64) -> Result<Option<BTreeSet<String>>, StoreError> {
        Sled::due(self, fingerprint, now)
    }
    fn set_due(
        &self,
        fingerprint: &str,
        due: &[(&str, u64)],
        every: bool,
    ) -> Result<(), StoreError> {
        Sled::set_due(self, fingerprint, due, every)
    }
    fn record_report(&self, report: &SeenReport, days: &[DkimDay]) -> Result<bool, StoreError> {
        Sled::record_report(self, report, days)
    }
    fn dkim_days(&self, domain: &str) -> Result<Vec<DkimDay>, StoreError> {
        Sled::dkim_days(self, domain)
    }
    fn seen_reports(&self) -> Result<Vec<SeenReport>, StoreError> {
        Sled::seen_reports(self)
    }
    fn read(&self, domains: Option<&[&str]>, history: bool) -> Result<Snapshot, StoreError> {
        let Some(domains) = domains else {
            return self.snapshot(history);
        };
        let mut found = std::collections::BTreeMap::new();
        for &domain in domains {
            let part = self.domain_snapshot(domain, history)?;
            if !part.keys.is_empty() || !part.dkim.is_empty() || !part.history.is_empty() {
                found.insert(part.domain.clone(), part);
            }
        }
        Ok(Snapshot::new(
            found.into_values().collect(),
            self.last_pass()?,
        ))
    }
    fn lease(&self, domains: &[&str], _ttl: Duration) -> Result<Vec<String>, StoreError> {
        // One process has the store (sled's lock): every domain is its own.
        Ok(domains.iter().map(|d| d.to_string()).collect())
    }
    fn closed_cleanly(&self) -> bool {
        Sled::closed_cleanly(self)
    }
    fn close(self: Box<Self>) -> Result<(), StoreError> {
        Sled::close(*self)
    }
}

/// The domain a history entry's key belongs to.
fn domain_of(key: &[u8]) -> String {
    let end = key.iter().position(|&b| b == 0).unwrap_or(key.len());
    String::from_utf8_lossy(&key[..end]).into_owned()
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Sled {
    /// Opens (or creates) the store in `dir`. Refuses a damaged store ([`StoreError::Damaged`])
    /// before changing anything; brings a store of an older rotor to the current layout; tidies
    /// what an interrupted backup left; publishes the readers' [`Snapshot`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // A store just closed (by this process or another) can stay locked for a moment while
        // sled's background threads let go of it: a short wait, so that only a store really
        // held open elsewhere is Busy.
        Self::wait_for(dir, RELEASE, || {}, Self::open_now)
    }

    /// [`Sled::open`] without the wait.
    fn open_now(dir: &Path) -> Result<Self, StoreError> {
        let mut store = Self::open_to_read(dir)?;
        store.writer = true;
        // The snapshot is published again unless the last writer closed the store with all of
        // it published (during this boot, with the same records: see `snapshot.rs`).
        let published = snapshot::snapshot_dir(dir);
        let current = snapshot::take_mark(&published, &store.mark_counts()?).unwrap_or(false);
        let journal = if current {
            Journal::find(&published).ok().flatten()
        } else {
            None
        };
        match journal {
            Some(journal) => *store.journal() = Some(journal),
            // Readers' data only: a failure here is retried by the next commit, or at close.
            None => {
                if store.publish_all().is_err() {
                    store.stale.store(true, Ordering::SeqCst);
                }
            }
        }
        Ok(store)
    }

    /// The record counts of the last commit as the snapshot's mark holds them.
    fn mark_counts(&self) -> Result<String, StoreError> {
        let counts = self.meta.get(COUNTS_KEY).map_err(|err| self.engine(err))?;
        Ok(counts.map_or_else(String::new, |bytes| {
            String::from_utf8_lossy(&bytes).into_owned()
        }))
    }

    /// [`Sled::open`] for a reader, who reads the store itself: publishes nothing.
    pub(crate) fn open_to_read(dir: &Path) -> Result<Self, StoreError> {
        let db = open_db(dir)?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|err| StoreError::Open {
                path: dir.to_owned(),
                detail: err.to_string(),
            })
        };
        let mut store = Self {
            path: dir.to_owned(),
            keys: open_tree("keys")?,
            history: open_tree("history")?,
            meta: open_tree("meta")?,
            reports: open_tree("reports")?,
            due: open_tree("due")?,
            due_at: open_tree("due_at")?,
            db,
            stale: AtomicBool::new(false),
            journal: Mutex::new(None),
            writer: false,
            clean: false,
        };
        // Under sled's lock: no backup of this store runs now.
        backup::tidy(dir).map_err(|err| store.io(format!("backup: {err}")))?;
        // Closed cleanly during this boot with these counts (the snapshot's mark): sled
        // recovered nothing, so the records need not all be read again.
        store.clean =
            snapshot::marked(&snapshot::snapshot_dir(dir), &store.mark_counts()?).unwrap_or(false);
        let schema = store.verify(!store.clean)?;
        if schema < SCHEMA {
            store.migrate()?;
        }
        Ok(store)
    }

    /// [`Sled::open`], waiting up to `timeout` while another process has the store open
    /// (retrying with a short backoff); `on_wait` is called once, when the wait starts.
    pub fn open_waiting(
        dir: &Path,
        timeout: Duration,
        on_wait: impl FnMut(),
    ) -> Result<Self, StoreError> {
        Self::wait_for(dir, timeout, on_wait, Self::open_now)
    }

    /// Opens with `open`, retrying while the store is busy (see [`Sled::open_waiting`]).
    pub(crate) fn wait_for(
        dir: &Path,
        timeout: Duration,
        mut on_wait: impl FnMut(),
        open: fn(&Path) -> Result<Self, StoreError>,
    ) -> Result<Self, StoreError> {
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(5);
        let mut waiting = false;
        loop {
            match open(dir) {
                Err(StoreError::Busy { .. }) if Instant::now() < deadline => {
                    if !waiting {
                        waiting = true;
                        on_wait();
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(delay.min(left));
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// The sidecar file that remembers the counts after the last commit, outside sled (which
    /// would drop it together with the data it counts).
    fn counts_file(&self) -> PathBuf {
        self.path.join("rotor-counts")
    }

    fn counts(&self) -> Counts {
        Counts {
            keys: self.keys.len() as u64,
            events: self.history.len() as u64,
        }
    }

    fn read_counts_file(&self) -> Result<Option<Counts>, StoreError> {
        let text = match std::fs::read_to_string(self.counts_file()) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(self.damaged(format!("{}: {err}", self.counts_file().display())));
            }
        };
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse())
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        match numbers.as_slice() {
            [keys, events] => Ok(Some(Counts {
                keys: *keys,
                events: *events,
            })),
            _ => Err(self.damaged(format!("{} is unreadable", self.counts_file().display()))),
        }
    }

    /// Records the counts after a commit: temporary file flushed to disk, rename, directory
    /// flushed.
    fn save_counts(&self, counts: Counts) -> Result<(), StoreError> {
        replace_file(
            &self.counts_file(),
            format!("{} {}\n", counts.keys, counts.events).as_bytes(),
            true,
        )
        .map_err(|err| self.io(err))
    }

    /// The record counts the last commit left in the `meta` tree.
    fn committed_counts(&self) -> Result<Counts, StoreError> {
        match self.meta.get(COUNTS_KEY).map_err(|e| self.engine(e))? {
            Some(bytes) => self.decode_damaged(COUNTS_KEY, &bytes),
            None => Err(self.damaged("its record counts are missing".into())),
        }
    }

    /// Checks that nothing was lost or garbled; returns the layout's version. Without `all`
    /// (the store was closed cleanly), only what needs no record read: the layout and the
    /// counts of the last commit against the counts file.
    fn verify(&self, all: bool) -> Result<u64, StoreError> {
        let schema = match self.meta.get(SCHEMA_KEY).map_err(|err| self.engine(err))? {
            None => 1,
            Some(bytes) => self.decode_damaged(SCHEMA_KEY, &bytes)?,
        };
        if schema > SCHEMA {
            return Err(StoreError::Open {
                path: self.path.clone(),
                detail: format!(
                    "it was written by a newer rotor (layout {schema}; this one knows up to {SCHEMA}): upgrade rotor"
                ),
            });
        }
        // The snapshot is published only once the store has the current layout.
        let published = snapshot::snapshot_dir(&self.path);
        if schema < 2 && published.exists() {
            return Err(self.damaged(format!(
                "it lost the record of its layout, which {} shows it had",
                published.display()
            )));
        }
        if !all && schema >= 2 {
            let committed = self.committed_counts()?;
            // Anything else is read in full below, to name what is wrong.
            if self.read_counts_file()? == Some(committed) {
                return Ok(schema);
            }
        }
        let have = self.counts();
        match self.read_counts_file()? {
            Some(want) if have.keys >= want.keys && have.events >= want.events => {}
            Some(want) => return Err(self.damaged(format!("it held {want}, now {have}"))),
            // Stores of the first rotor had no counts file; since, every store has one.
            None if schema < 2 => {}
            None => {
                return Err(self.damaged(format!(
                    "{} is missing, so records lost cannot be told",
                    self.counts_file().display()
                )));
            }
        }
        if schema >= 2 {
            let committed = self.committed_counts()?;
            if committed != have {
                return Err(self.damaged(format!("its last commit left {committed}, now {have}")));
            }
        }
        for entry in self.keys.iter() {
            let (key, value) = entry.map_err(|err| self.engine(err))?;
            self.decode_damaged::<KeyRecord>(&key, &value)?;
        }
        for entry in self.history.iter() {
            let (key, value) = entry.map_err(|err| self.engine(err))?;
            self.decode_damaged::<Event>(&key, &value)?;
        }
        if let Some(bytes) = self.meta.get(LAST_PASS_KEY).map_err(|e| self.engine(e))? {
            self.decode_damaged::<PassRecord>(LAST_PASS_KEY, &bytes)?;
        }
        self.verify_evidence()?;
        Ok(schema)
    }

    /// Rewrites every key record in the current layout and records the layout's version and
    /// the counts, in one transaction.
    fn migrate(&self) -> Result<(), StoreError> {
        let counts = self.counts();
        // The counts file first: a store of the current layout always has one.
        if self.read_counts_file()?.is_none() {
            self.save_counts(counts)?;
        }
        let mut records = Vec::new();
        for entry in self.keys.iter() {
            let (key, value) = entry.map_err(|err| self.engine(err))?;
            let record: KeyRecord = self.decode_damaged(&key, &value)?;
            records.push((key, self.encode(&record)?));
        }
        let schema = self.encode(&SCHEMA)?;
        let counts = self.encode(&counts)?;
        let result = (&self.keys, &self.meta).transaction(|(keys, meta)| {
            for (key, value) in &records {
                keys.insert(key, value.as_slice())?;
            }
            meta.insert(COUNTS_KEY, counts.as_slice())?;
            meta.insert(SCHEMA_KEY, schema.as_slice())?;
            Ok(())
        });
        self.finish(result)?;
        self.db.flush().map_err(|err| self.engine(err))?;
        Ok(())
    }

    /// Whether the last writer closed the store cleanly during this boot: no run died with it
    /// open since (which may have left temporary files behind), and no power was lost.
    pub fn closed_cleanly(&self) -> bool {
        self.clean
    }

    /// Flushes and closes the store (releasing its lock). Call [`Sled::back_up`] afterwards to
    /// keep a copy.
    pub fn close(self) -> Result<(), StoreError> {
        self.db.flush().map_err(|err| self.engine(err))?;
        if self.stale.load(Ordering::SeqCst) {
            self.publish_all()?;
        }
        if self.writer {
            // Everything is published: the next writer need not publish it again. Without the
            // mark (it could not be written) it does, so a failure here is no failure.
            let dir = snapshot::snapshot_dir(&self.path);
            snapshot::write_mark(&dir, &self.mark_counts()?).ok();
        }
        let db_file = self.path.join("db");
        drop(self);
        // sled's background threads let go of the database (and its lock) a moment after the
        // last handle is dropped: wait for that, briefly, so the caller's next step (a backup,
        // another open) finds the store free.
        if let Ok(file) = std::fs::File::open(&db_file) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    pub(crate) fn io(&self, err: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            detail: err.to_string(),
        }
    }

    fn damaged(&self, detail: String) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            detail,
        }
    }

    /// An engine error: damage where sled says so.
    pub(crate) fn engine(&self, err: ::sled::Error) -> StoreError {
        match err {
            ::sled::Error::Corruption { .. } => self.damaged(err.to_string()),
            err => self.io(err),
        }
    }

    pub(crate) fn finish<T>(
        &self,
        result: Result<T, TransactionError<StoreError>>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => Ok(value),
            Err(TransactionError::Abort(err)) => Err(err),
            Err(TransactionError::Storage(err)) => Err(self.engine(err)),
        }
    }

    pub(crate) fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|err| self.io(err))
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<T, StoreError> {
        serde_json::from_slice(value).map_err(|err| StoreError::Corrupt {
            path: self.path.clone(),
            key: String::from_utf8_lossy(key).replace('\0', "/"),
            detail: err.to_string(),
        })
    }

    /// Decodes a record while opening: one that cannot be read makes the store damaged.
    pub(crate) fn decode_damaged<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<T, StoreError> {
        self.decode(key, value).map_err(|err| match err {
            StoreError::Corrupt { key, detail, .. } => {
                self.damaged(format!("record {key:?} cannot be read: {detail}"))
            }
            err => err,
        })
    }

    fn scan<T: serde::de::DeserializeOwned>(
        &self,
        tree: &::sled::Tree,
        prefix: &[u8],
    ) -> Result<Vec<T>, StoreError> {
        tree.scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|err| self.engine(err))?;
                self.decode(&key, &value)
            })
            .collect()
    }

    /// Every key record, ordered by domain, then selector.
    pub fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.scan(&self.keys, b"")
    }

    /// The key records of one domain.
    pub fn domain_keys(&self, domain: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.scan(&self.keys, &domain_prefix(domain))
    }

    /// The history of one domain, oldest first.
    pub fn history(&self, domain: &str) -> Result<Vec<Event>, StoreError> {
        self.scan(&self.history, &domain_prefix(domain))
    }

    /// The last pass recorded with [`Sled::record_pass`].
    pub fn last_pass(&self) -> Result<Option<PassRecord>, StoreError> {
        self.meta
            .get(LAST_PASS_KEY)
            .map_err(|err| self.engine(err))?
            .map(|bytes| self.decode(LAST_PASS_KEY, &bytes))
            .transpose()
    }

    /// Records a pass that ended at `at` (Unix seconds; `boot` on the boot clock), flushed to
    /// disk before it returns; returns the record, whose `last_success` carries over from the
    /// passes before.
    pub fn record_pass(
        &self,
        at: u64,
        boot: Option<BootClock>,
        success: bool,
    ) -> Result<PassRecord, StoreError> {
        let decode = |bytes: Option<::sled::IVec>| -> TxResult<Option<PassRecord>> {
            bytes
                .map(|bytes| self.decode(LAST_PASS_KEY, &bytes))
                .transpose()
                .map_err(ConflictableTransactionError::Abort)
        };
        let result = self.meta.transaction(|meta| {
            let before = decode(meta.get(LAST_PASS_KEY)?)?;
            let record = PassRecord::after(before, at, boot, success);
            let bytes = serde_json::to_vec(&record)
                .map_err(|err| ConflictableTransactionError::Abort(self.io(err)))?;
            meta.insert(LAST_PASS_KEY, bytes)?;
            Ok(record)
        });
        let record = self.finish(result)?;
        self.db.flush().map_err(|err| self.engine(err))?;
        if snapshot::publish_pass(&snapshot::snapshot_dir(&self.path), Some(&record)).is_err() {
            self.stale.store(true, Ordering::SeqCst);
        }
        Ok(record)
    }

    /// One transaction of [`crate::Store::commit`]: `domains` are those of `changes` and
    /// `events`, sorted.
    pub(crate) fn transact(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
        domains: &[&str],
    ) -> Result<(), StoreError> {
        let mut writes = Vec::with_capacity(changes.len());
        for (before, after) in changes {
            let id = key_id(&after.domain, &after.selector);
            writes.push((id, *before, self.encode(after)?, *after));
        }
        let mut history = Vec::with_capacity(events.len());
        for event in events {
            let seq = self.db.generate_id().map_err(|err| self.engine(err))?;
            let key = [
                domain_prefix(&event.domain),
                event.at.to_be_bytes().to_vec(),
                seq.to_be_bytes().to_vec(),
            ]
            .concat();
            history.push((key, self.encode(event)?));
        }
        let added = changes
            .iter()
            .filter(|(before, _)| before.is_none())
            .count() as u64;
        let abort = ConflictableTransactionError::Abort;
        let trees = (
            &self.keys,
            &self.history,
            &self.meta,
            &self.due,
            &self.due_at,
        );
        let result = trees.transaction(|(keys, log, meta, due, due_at)| {
            for (id, before, after, record) in &writes {
                let current: Option<KeyRecord> = keys
                    .get(id)?
                    .map(|bytes| self.decode(id, &bytes))
                    .transpose()
                    .map_err(abort)?;
                if current.as_ref() != *before {
                    return Err(abort(StoreError::Conflict {
                        domain: record.domain.clone(),
                        selector: record.selector.clone(),
                    }));
                }
                keys.insert(id.as_slice(), after.as_slice())?;
            }
            for (key, value) in &history {
                log.insert(key.as_slice(), value.as_slice())?;
            }
            let counts: Counts = match meta.get(COUNTS_KEY)? {
                Some(bytes) => self.decode(COUNTS_KEY, &bytes).map_err(abort)?,
                None => return Err(abort(self.damaged("its record counts are missing".into()))),
            };
            let counts = Counts {
                keys: counts.keys + added,
                events: counts.events + history.len() as u64,
            };
            let bytes = serde_json::to_vec(&counts).map_err(|err| abort(self.io(err)))?;
            meta.insert(COUNTS_KEY, bytes)?;
            for domain in domains {
                mark_due_now(due, due_at, domain)?;
            }
            Ok(counts)
        });
        let counts = self.finish(result)?;
        self.db.flush().map_err(|err| self.engine(err))?;
        // The counts as the transaction left them (which the next open checks against the
        // trees): counting the trees here would read every record at every commit.
        self.save_counts(counts)?;
        self.publish(domains);
        Ok(())
    }

    /// One domain's keys, evidence and (with `history`) history, as readers see them.
    pub(crate) fn domain_snapshot(
        &self,
        domain: &str,
        history: bool,
    ) -> Result<DomainSnapshot, StoreError> {
        Ok(DomainSnapshot {
            domain: domain.to_string(),
            keys: self.domain_keys(domain)?,
            history: if history {
                self.history(domain)?
            } else {
                Vec::new()
            },
            dkim: self.dkim_days(domain)?,
        })
    }

    /// Publishes `domains` for readers after a commit: one log of their lines, or everything
    /// anew when the logs outgrew the base or an earlier publication failed. Readers' data
    /// only: a failure is made good by the next publication, or at close.
    pub(crate) fn publish(&self, domains: &[&str]) {
        if domains.is_empty() {
            return;
        }
        let published = (|| -> Result<(), StoreError> {
            let mut journal = self.journal();
            let stale = self.stale.load(Ordering::SeqCst);
            if let Some(journal) = journal.as_mut().filter(|j| !j.full() && !stale) {
                let mut lines = Vec::new();
                for domain in domains {
                    snapshot::push_line(&mut lines, &self.domain_snapshot(domain, true)?)
                        .map_err(|err| self.snapshot_error(err))?;
                }
                return snapshot::publish_log(&snapshot::snapshot_dir(&self.path), journal, &lines)
                    .map_err(|err| self.snapshot_error(err));
            }
            self.publish_all_to(&mut journal)
        })();
        if published.is_err() {
            self.stale.store(true, Ordering::SeqCst);
        }
    }

    /// A failure to publish the readers' snapshot, as the store's error.
    fn snapshot_error(&self, err: std::io::Error) -> StoreError {
        self.io(format!("snapshot: {err}"))
    }

    /// The readers' journal, held; after a panic while it was held, none (publish it all).
    fn journal(&self) -> MutexGuard<'_, Option<Journal>> {
        self.journal.lock().unwrap_or_else(|poisoned| {
            let mut journal = poisoned.into_inner();
            *journal = None;
            journal
        })
    }

    /// Calls `read` with every key record, in the store's order (by domain, then selector):
    /// read from sled on another thread and decoded on this one, batch by batch, so that the
    /// two overlap.
    fn read_keys<T>(
        &self,
        read: impl FnOnce(
            &mut dyn Iterator<Item = Result<KeyRecord, StoreError>>,
        ) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        const BATCH: usize = 1024;
        std::thread::scope(|scope| {
            let (send, batches) = std::sync::mpsc::sync_channel(4);
            let reader = scope.spawn(move || -> Result<(), StoreError> {
                let mut batch = Vec::with_capacity(BATCH);
                for item in self.keys.iter() {
                    batch.push(item.map_err(|err| self.engine(err))?);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if send.send(full).is_err() {
                            // The decoder stopped (at a record it cannot read).
                            return Ok(());
                        }
                    }
                }
                // A decoder that stopped has its error already.
                let _ = send.send(batch);
                Ok(())
            });
            let mut records = batches
                .into_iter()
                .flatten()
                .map(|(key, value): (::sled::IVec, ::sled::IVec)| self.decode(&key, &value));
            let read = read(&mut records);
            drop(records);
            let sent = reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // A reader that failed ended the records early: its error, not what `read` made.
            sent.and(read)
        })
    }

    /// Calls `each` with every domain's keys, evidence and (with `history`) history, domain by
    /// domain in order: the trees are read side by side, never held whole.
    fn each_domain(
        &self,
        history: bool,
        mut each: impl FnMut(DomainSnapshot) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read_keys(|keys| {
            let mut keys = keys.peekable();
            let events: Box<dyn Iterator<Item = Result<Event, StoreError>>> = if history {
                Box::new(self.history.iter().map(|item| {
                    let (key, value) = item.map_err(|err| self.engine(err))?;
                    let mut event: Event = self.decode(&key, &value)?;
                    // Listed under the domain of its key, which orders the tree.
                    if key.get(event.domain.len()) != Some(&0)
                        || !key.starts_with(event.domain.as_bytes())
                    {
                        event.domain = domain_of(&key);
                    }
                    Ok(event)
                }))
            } else {
                Box::new(std::iter::empty())
            };
            let mut events = events.peekable();
            let mut days = self.dkim_day_items().peekable();
            loop {
                let heads = [head(&mut keys)?, head(&mut events)?, head(&mut days)?];
                let Some(domain) = heads.into_iter().flatten().min().map(str::to_string) else {
                    return Ok(());
                };
                each(DomainSnapshot {
                    keys: take(&mut keys, &domain),
                    history: take(&mut events, &domain),
                    dkim: take(&mut days, &domain),
                    domain,
                })?;
            }
        })
    }

    /// Every domain's keys, evidence and (with `history`) history.
    fn domains(&self, history: bool) -> Result<Vec<DomainSnapshot>, StoreError> {
        let mut domains = Vec::new();
        self.each_domain(history, |domain| {
            domains.push(domain);
            Ok(())
        })?;
        Ok(domains)
    }

    /// What readers see, read from the store itself (the history only with `history`).
    pub(crate) fn snapshot(&self, history: bool) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::new(self.domains(history)?, self.last_pass()?))
    }

    /// Publishes the readers' snapshot whole.
    fn publish_all(&self) -> Result<(), StoreError> {
        self.publish_all_to(&mut self.journal())
    }

    /// [`Sled::publish_all`], the journal held.
    fn publish_all_to(&self, journal: &mut Option<Journal>) -> Result<(), StoreError> {
        *journal = None;
        let error = |err| self.snapshot_error(err);
        let mut base = snapshot::Base::start(&snapshot::snapshot_dir(&self.path)).map_err(error)?;
        self.each_domain(true, |domain| base.push(&domain).map_err(error))?;
        *journal = Some(base.finish(self.last_pass()?.as_ref()).map_err(error)?);
        self.stale.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// What belongs to one domain (the trees list a domain's records together, domains in order).
trait OfDomain {
    fn domain(&self) -> &str;
}

impl OfDomain for KeyRecord {
    fn domain(&self) -> &str {
        &self.domain
    }
}

impl OfDomain for Event {
    fn domain(&self) -> &str {
        &self.domain
    }
}

impl OfDomain for DkimDay {
    fn domain(&self) -> &str {
        &self.domain
    }
}

/// The domain of the next of `items`; the error, taken, when the next is one.
fn head<'a, T: OfDomain + 'a>(
    items: &'a mut std::iter::Peekable<impl Iterator<Item = Result<T, StoreError>>>,
) -> Result<Option<&'a str>, StoreError> {
    if matches!(items.peek(), Some(Err(_))) {
        return items.next().transpose().map(|_| None);
    }
    Ok(items
        .peek()
        .and_then(|item| item.as_ref().ok())
        .map(OfDomain::domain))
}

/// The next of `items` that belong to `domain` (up to an error, which stays next).
fn take<T: OfDomain>(
    items: &mut std::iter::Peekable<impl Iterator<Item = Result<T, StoreError>>>,
    domain: &str,
) -> Vec<T> {
    // Grown from room for one, not collected: a collected list of 384-byte key records
    // reserves room for four, 115 MB more at 100,000 domains of one or two keys each.
    let mut taken = Vec::new();
    while let Some(Ok(item)) =
        items.next_if(|item| matches!(item, Ok(theirs) if theirs.domain() == domain))
    {
        taken.reserve_exact(1);
        taken.push(item);
    }
    taken
}

/// Opens sled in `dir`, telling a store in use and a damaged one from other failures.
fn open_db(dir: &Path) -> Result<::sled::Db, StoreError> {
    // sled's page cache defaults to 1 GiB, which a reader of a large store fills.
    ::sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .open()
        .map_err(|err| {
            let detail = err.to_string();
            if detail.contains("could not acquire lock") {
                StoreError::Busy {
                    path: dir.to_owned(),
                }
            } else if matches!(err, ::sled::Error::Corruption { .. }) {
                StoreError::Damaged {
                    path: dir.to_owned(),
                    detail,
                }
            } else {
                StoreError::Open {
                    path: dir.to_owned(),
                    detail,
                }
            }
        })
}

#[cfg(test)]
impl Sled {
    /// [`crate::Store::commit`] in one transaction, for the tests of sled's own mechanics.
    pub(crate) fn commit(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.transact(changes, events, &crate::store::domains_of(changes, events))
    }

    /// Closes, then backs up.
    pub(crate) fn close_and_back_up(self) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.close()?;
        backup::back_up(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn key(selector: &str, phase: Phase) -> KeyRecord {
        KeyRecord {
            phase,
            ..KeyRecord::reserved(
                "example.com",
                selector,
                crate::KeyAlgorithm::Rsa2048,
                "/k".into(),
                10,
            )
        }
    }

    fn event(selector: &str, phase: Phase, at: u64) -> Event {
        Event {
            at,
            domain: "example.com".into(),
            selector: selector.into(),
            phase,
            detail: String::new(),
        }
    }

    #[test]
    fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let a = key("a", Phase::Generated);
        {
            let store = Sled::open(dir.path()).unwrap();
            store
                .commit(&[(None, &a)], &[event("a", Phase::Generated, 10)])
                .unwrap();
            let b = KeyRecord {
                phase: Phase::Published,
                ..a.clone()
            };
            store
                .commit(&[(Some(&a), &b)], &[event("a", Phase::Published, 11)])
                .unwrap();
        }
        let store = Sled::open(dir.path()).unwrap();
        assert_eq!(store.keys().unwrap()[0].phase, Phase::Published);
        let phases: Vec<Phase> = store
            .history("example.com")
            .unwrap()
            .iter()
            .map(|e| e.phase)
            .collect();
        assert_eq!(phases, [Phase::Generated, Phase::Published]);
        assert!(store.domain_keys("example.co").unwrap().is_empty());
    }

    #[test]
    fn a_stale_write_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        let a = key("a", Phase::Generated);
        let b = key("b", Phase::Active);
        store.commit(&[(None, &a), (None, &b)], &[]).unwrap();
        let a2 = KeyRecord {
            phase: Phase::Published,
            ..a.clone()
        };
        store.commit(&[(Some(&a), &a2)], &[]).unwrap();
        // A second writer still holding the old `a` tries to move both keys.
        let b2 = KeyRecord {
            phase: Phase::Retiring,
            ..b.clone()
        };
        let err = store
            .commit(
                &[(Some(&b), &b2), (Some(&a), &a2)],
                &[event("b", Phase::Retiring, 12)],
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(
            store.domain_keys("example.com").unwrap()[1].phase,
            Phase::Active
        );
        assert!(store.history("example.com").unwrap().is_empty());
        // Inserting a key that exists is a conflict too.
        assert!(store.commit(&[(None, &a)], &[]).is_err());
    }

    #[test]
    fn damage_is_reported_and_the_backup_restores_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Sled::open(&path).unwrap();
        store
            .commit(
                &[(None, &key("a", Phase::Active))],
                &[event("a", Phase::Active, 10)],
            )
            .unwrap();
        store.close_and_back_up().unwrap();

        let db = path.join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        for byte in bytes.iter_mut().skip(100).step_by(37) {
            *byte ^= 0xff;
        }
        std::fs::write(&db, &bytes).unwrap();
        let err = match Sled::open(&path) {
            Ok(store) => store
                .keys()
                .map(|_| ())
                .expect_err("a damaged store is refused"),
            Err(err) => err,
        };
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("store.backup"), "{err}");

        std::fs::remove_dir_all(&path).unwrap();
        std::fs::rename(crate::Store::backup_path(&path), &path).unwrap();
        let restored = Sled::open(&path).unwrap();
        assert_eq!(restored.keys().unwrap().len(), 1);
        assert_eq!(restored.history("example.com").unwrap().len(), 1);
    }

    #[test]
    fn a_record_garbled_in_a_store_closed_cleanly_is_named_when_read_and_at_open_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        store
            .commit(&[(None, &key("a", Phase::Active))], &[])
            .unwrap();
        // Garbled behind rotor's back, then closed cleanly: the open reads no record (it
        // trusts the clean close), but reading the record names it.
        store
            .keys
            .insert(key_id("example.com", "a"), b"{not json".to_vec())
            .unwrap();
        store.close().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        assert!(store.closed_cleanly());
        let err = store.keys().unwrap_err().to_string();
        assert!(err.contains("example.com/a"), "{err}");
        // A writer that dies leaves no mark: the next open reads every record and refuses.
        drop(store);
        let err = Sled::open(dir.path()).err().expect("refused").to_string();
        assert!(
            err.contains("damaged") && err.contains("example.com"),
            "{err}"
        );
    }

    #[test]
    fn a_record_damaged_midway_fails_the_whole_read_and_publishes_no_part_of_a_new_base() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        // More records than one batch of the reading thread, in several transactions.
        let keys: Vec<KeyRecord> = (0..3000)
            .map(|i| KeyRecord {
                domain: format!("d{i:05}.test"),
                ..key("a", Phase::Active)
            })
            .collect();
        let added: Vec<_> = keys.iter().map(|key| (None, key)).collect();
        store.commit(&added, &[]).unwrap();
        store
            .keys
            .insert(key_id("d01500.test", "a"), b"{not json".to_vec())
            .unwrap();

        let err = store.snapshot(false).unwrap_err().to_string();
        assert!(err.contains("d01500.test/a"), "{err}");
        let err = store.publish_all().unwrap_err().to_string();
        assert!(err.contains("d01500.test/a"), "{err}");
        // Readers (the store is held: they read what was published) still see every domain
        // as of the last commit, none cut off where the damage stopped the new base.
        let seen = Snapshot::read(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(seen.keys(), keys);
    }

    #[test]
    fn a_history_event_is_listed_under_the_domain_of_its_key_whatever_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        let keys: Vec<KeyRecord> = ["a.test", "b.test", "c.test"]
            .iter()
            .map(|domain| KeyRecord {
                domain: domain.to_string(),
                ..key("s", Phase::Active)
            })
            .collect();
        let added: Vec<_> = keys.iter().map(|key| (None, key)).collect();
        store.commit(&added, &[]).unwrap();
        // Written behind rotor's back: under a.test's key, naming a domain sorted after all.
        let stray = Event {
            domain: "zzz.test".into(),
            ..event("s", Phase::Active, 10)
        };
        let id = [domain_prefix("a.test"), 10u64.to_be_bytes().to_vec()].concat();
        store
            .history
            .insert(id, serde_json::to_vec(&stray).unwrap())
            .unwrap();

        let seen = store.snapshot(true).unwrap();
        assert_eq!(seen.history("a.test").len(), 1);
        assert!(seen.history("zzz.test").is_empty());
        for key in &keys {
            assert_eq!(seen.domain_keys(&key.domain), std::slice::from_ref(key));
        }
    }

    #[test]
    fn a_damaged_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        store
            .keys
            .insert(key_id("example.com", "bad"), b"{not json".to_vec())
            .unwrap();
        let err = store.keys().unwrap_err().to_string();
        assert!(err.contains("example.com/bad"), "{err}");
        assert!(err.contains("damaged"), "{err}");
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::model::Phase;

    fn key(selector: &str) -> KeyRecord {
        KeyRecord::reserved(
            "example.com",
            selector,
            crate::KeyAlgorithm::Rsa2048,
            "/k".into(),
            10,
        )
    }

    /// `record`'s JSON with its fields in reverse order.
    fn reordered(record: &KeyRecord) -> Vec<u8> {
        let value = serde_json::to_value(record).unwrap();
        let fields: Vec<String> = value
            .as_object()
            .unwrap()
            .iter()
            .rev()
            .map(|(name, value)| format!("{}:{value}", serde_json::to_string(name).unwrap()))
            .collect();
        format!("{{{}}}", fields.join(",")).into_bytes()
    }

    #[test]
    fn a_record_stored_with_another_field_order_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        let a = key("a");
        store.commit(&[(None, &a)], &[]).unwrap();
        let id = key_id("example.com", "a");
        let bytes = reordered(&a);
        assert_ne!(bytes, serde_json::to_vec(&a).unwrap());
        store.keys.insert(&id, bytes).unwrap();
        assert_eq!(store.keys().unwrap(), std::slice::from_ref(&a));

        let b = KeyRecord {
            phase: Phase::Published,
            ..a.clone()
        };
        store.commit(&[(Some(&a), &b)], &[]).unwrap();
        assert_eq!(store.keys().unwrap(), std::slice::from_ref(&b));
        // Still a conflict when the values differ.
        let err = store.commit(&[(Some(&a), &b)], &[]).unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    }

    /// A store as the first rotor left it: no `meta` tree, records lacking later fields.
    fn legacy_store(dir: &Path) -> Vec<u8> {
        let db = ::sled::Config::new().path(dir).open().unwrap();
        let keys = db.open_tree("keys").unwrap();
        let mut value = serde_json::to_value(key("a")).unwrap();
        for field in ["zone_id", "target", "signers", "compromised"] {
            value.as_object_mut().unwrap().remove(field);
        }
        let legacy = serde_json::to_vec(&value).unwrap();
        keys.insert(key_id("example.com", "a"), legacy.clone())
            .unwrap();
        db.flush().unwrap();
        legacy
    }

    #[test]
    fn opening_an_old_store_rewrites_its_records_in_the_current_layout() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = legacy_store(dir.path());
        let store = Sled::open(dir.path()).unwrap();
        let stored = store.keys.get(key_id("example.com", "a")).unwrap().unwrap();
        assert_ne!(&stored[..], &legacy[..]);
        assert_eq!(&stored[..], &serde_json::to_vec(&key("a")).unwrap()[..]);
        let schema: u64 =
            serde_json::from_slice(&store.meta.get(SCHEMA_KEY).unwrap().unwrap()).unwrap();
        assert_eq!(schema, SCHEMA);
        // The counts are kept from now on: the store reopens, and a lost counts file is noticed.
        store.close().unwrap();
        Sled::open(dir.path()).unwrap().close().unwrap();
        std::fs::remove_file(dir.path().join("rotor-counts")).unwrap();
        assert!(matches!(
            Sled::open(dir.path()),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn a_store_of_a_newer_rotor_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        store.commit(&[(None, &key("a"))], &[]).unwrap();
        store.meta.insert(SCHEMA_KEY, b"3".to_vec()).unwrap();
        store.close().unwrap();
        let err = Sled::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("newer rotor"), "{err}");
    }

    #[test]
    fn the_last_pass_is_remembered_with_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        assert_eq!(store.last_pass().unwrap(), None);
        let first = store.record_pass(100, None, false).unwrap();
        assert_eq!(first.last_success, None);
        store.record_pass(200, None, true).unwrap();
        let boot = Some(BootClock { id: 7, secs: 40 });
        let third = store.record_pass(300, boot, false).unwrap();
        assert_eq!(
            third,
            PassRecord {
                at: 300,
                success: false,
                last_success: Some(200),
                boot,
            }
        );
        store.close().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        assert_eq!(store.last_pass().unwrap(), Some(third));
        store.close().unwrap();
        let snapshot = Snapshot::read(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(snapshot.last_pass(), Some(third));
    }
}
