//! What readers (`status`, `history`, `plan`) see while a pass has the store open: the writer
//! publishes each domain's keys and history, and the last pass, as files in
//! `<dir>/rotor-snapshot/`, each replaced atomically after every commit. sled has no read-only
//! mode and locks its files exclusively: a reader that waited for the store would wait for the
//! whole pass. When the store is free, readers read it directly (briefly holding its lock: a
//! pass that starts meanwhile waits with [`Store::open_waiting`]).
//!
//! A reader sees only committed data: each domain as of one commit at most a moment old (or,
//! after a writer died between a commit and its publication, until the next writer opens the
//! store, which publishes everything again).
//!
//! A writer that closes the store with everything published leaves a mark in the snapshot
//! ([`MARK_FILE`]: the store's record counts and the system's boot id); the next writer that
//! finds the mark matching removes it and publishes nothing at open, so an idle pass writes
//! no file per domain. A writer that dies leaves no mark (it was removed at open), and a power
//! loss (which may lose the unflushed snapshot files) changes the boot id: either way, the next
//! writer publishes everything again.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::durable::{remove_file_if_present, replace_file, sync_dir, temp_path};
use crate::error::StoreError;
use crate::model::{DkimDay, Event, KeyRecord, PassRecord};
use crate::store::Store;

/// The file that holds the last pass.
const PASS_FILE: &str = "last-pass.json";
/// The mark of a snapshot complete as of the store's last close (not `.json`: readers skip it).
const MARK_FILE: &str = "published";
/// Where Linux tells the boot's random id (changes with every boot).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// This boot's random id, as Linux tells it; `None` where it cannot be read.
pub fn boot_id() -> Option<String> {
    let boot = fs::read_to_string(BOOT_ID).ok()?;
    let boot = boot.trim();
    (!boot.is_empty()).then(|| boot.to_string())
}

/// The snapshot's directory in the store's.
pub(crate) const SNAPSHOT_DIR: &str = "rotor-snapshot";

/// Where the store in `dir` publishes its snapshot.
pub(crate) fn snapshot_dir(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_DIR)
}

/// One domain's file: its name is the domain, hex-encoded (a domain never becomes a path).
fn domain_file(dir: &Path, domain: &str) -> PathBuf {
    let hex: String = domain.bytes().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.json"))
}

/// One domain's keys and history.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DomainSnapshot {
    /// The domain.
    pub domain: String,
    /// Its keys, ordered by selector.
    pub keys: Vec<KeyRecord>,
    /// Its history, oldest first.
    pub history: Vec<Event>,
    /// What DMARC reports said of its selectors, by selector, then day.
    #[serde(default)]
    pub dkim: Vec<DkimDay>,
}

/// Writes one domain's file. Not flushed to disk: the snapshot is derived data, and every
/// writer that opens the store publishes it again.
pub(crate) fn publish_domain(dir: &Path, domain: &DomainSnapshot) -> io::Result<()> {
    let bytes = serde_json::to_vec(domain).map_err(io::Error::other)?;
    replace_file(&domain_file(dir, &domain.domain), &bytes, false)
}

/// Writes the last pass's file.
pub(crate) fn publish_pass(dir: &Path, pass: Option<&PassRecord>) -> io::Result<()> {
    let bytes = serde_json::to_vec(&pass).map_err(io::Error::other)?;
    replace_file(&dir.join(PASS_FILE), &bytes, false)
}

/// Publishes everything: the first time into a temporary directory renamed into place (so a
/// reader never sees part of it), later file by file, dropping files of domains not in the store.
pub(crate) fn publish_all(
    dir: &Path,
    domains: &BTreeMap<String, DomainSnapshot>,
    pass: Option<&PassRecord>,
) -> io::Result<()> {
    let fresh = !dir.exists();
    let target = if fresh {
        let temp = temp_path(dir);
        crate::durable::remove_dir_if_present(&temp)?;
        fs::create_dir(&temp)?;
        temp
    } else {
        dir.to_owned()
    };
    for domain in domains.values() {
        publish_domain(&target, domain)?;
    }
    publish_pass(&target, pass)?;
    if fresh {
        fs::rename(&target, dir)?;
        return sync_dir(crate::durable::parent(dir));
    }
    let wanted: HashSet<PathBuf> = domains.keys().map(|d| domain_file(dir, d)).collect();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|ext| ext == "json")
            && path.file_name().is_some_and(|name| name != PASS_FILE)
            && !wanted.contains(&path);
        if stale {
            remove_file_if_present(&path)?;
        }
    }
    Ok(())
}

/// What the mark says of the store whose snapshot is in `dir`: `counts` (the store's record
/// counts, as text) and this boot's id. `None` where the boot id cannot be read (then no mark
/// is ever trusted).
fn mark(counts: &str) -> Option<String> {
    boot_id().map(|boot| format!("{counts} boot {boot}\n"))
}

/// Marks the snapshot in `dir` complete for a store with `counts` (not flushed to disk: a power
/// loss changes the boot id, which voids the mark).
pub(crate) fn write_mark(dir: &Path, counts: &str) -> io::Result<()> {
    match mark(counts) {
        Some(mark) if dir.is_dir() => replace_file(&dir.join(MARK_FILE), mark.as_bytes(), false),
        _ => Ok(()),
    }
}

/// Whether the snapshot in `dir` was marked complete for a store with `counts` during this
/// boot (by a writer that closed the store cleanly); the mark stays.
pub(crate) fn marked(dir: &Path, counts: &str) -> io::Result<bool> {
    let found = match fs::read_to_string(dir.join(MARK_FILE)) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    Ok(mark(counts).is_some_and(|mark| mark == found))
}

/// [`marked`], and the mark is removed either way (a writer that dies from now on leaves
/// none).
pub(crate) fn take_mark(dir: &Path, counts: &str) -> io::Result<bool> {
    let marked = marked(dir, counts)?;
    remove_file_if_present(&dir.join(MARK_FILE))?;
    Ok(marked)
}

/// What a reader reads of the store.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// Everything (the history only with `history`).
    All { history: bool },
    /// These domains, without their history.
    Domains(&'a [&'a str]),
}

/// A consistent view of the store for readers, taken without stopping a writer.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    domains: BTreeMap<String, DomainSnapshot>,
    last_pass: Option<PassRecord>,
}

impl Snapshot {
    /// What the store in `dir` holds. When no other process has it open, read from the store
    /// itself (so damage is reported: [`StoreError::Damaged`]); while one has it (a pass),
    /// what that writer published, without waiting for it. Where nothing was published yet (a
    /// store of an older rotor) or it cannot be read, waits up to `timeout` for the store
    /// ([`StoreError::Busy`] after that). Like [`Store::open`], creates a store in a missing
    /// `dir`: check first.
    pub fn read(dir: &Path, timeout: Duration) -> Result<Self, StoreError> {
        Self::read_with(dir, timeout, Part::All { history: true })
    }

    /// [`Snapshot::read`] without the history (empty in what it returns): the keys, the
    /// evidence and the last pass, which is all `rotor status` and `rotor plan` need, read in
    /// a fraction of the time and memory.
    pub fn read_present(dir: &Path, timeout: Duration) -> Result<Self, StoreError> {
        Self::read_with(dir, timeout, Part::All { history: false })
    }

    /// [`Snapshot::read_present`] of `domains` only (the others are absent from what it
    /// returns): what `rotor status DOMAIN` needs, read without the rest of a large store.
    pub fn read_domains(
        dir: &Path,
        timeout: Duration,
        domains: &[&str],
    ) -> Result<Self, StoreError> {
        Self::read_with(dir, timeout, Part::Domains(domains))
    }

    fn read_with(dir: &Path, timeout: Duration, part: Part<'_>) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + timeout;
        let store = loop {
            match Store::open_to_read(dir) {
                // A writer holds the store: what it published, as soon as there is something
                // (a writer that just opened the store publishes it a moment later).
                Err(StoreError::Busy { .. }) => {
                    let published = match part {
                        Part::All { history } => Self::load(&snapshot_dir(dir), history),
                        Part::Domains(domains) => Self::load_domains(&snapshot_dir(dir), domains),
                    };
                    if let Some(snapshot) = published {
                        return Ok(snapshot);
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Busy {
                            path: dir.to_owned(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let snapshot = match part {
            Part::All { history } => store.snapshot(history)?,
            Part::Domains(domains) => {
                let mut snapshot = Self {
                    last_pass: store.last_pass()?,
                    ..Self::default()
                };
                for &domain in domains {
                    let part = store.domain_snapshot(domain, false)?;
                    if !part.keys.is_empty() || !part.dkim.is_empty() {
                        snapshot.domains.insert(part.domain.clone(), part);
                    }
                }
                snapshot
            }
        };
        store.close()?;
        Ok(snapshot)
    }

    /// The published files of `domains` and of the last pass, without the history, or `None`
    /// when nothing is published or a file cannot be read.
    fn load_domains(dir: &Path, domains: &[&str]) -> Option<Self> {
        let read = |path: &Path| match fs::read(path) {
            Ok(bytes) => Some(Some(bytes)),
            // A domain without keys has no file.
            Err(err) if err.kind() == io::ErrorKind::NotFound => Some(None),
            Err(_) => None,
        };
        // Every publication writes the pass's file: without it, nothing is published yet.
        let pass = read(&dir.join(PASS_FILE))??;
        let mut snapshot = Self {
            last_pass: serde_json::from_slice(&pass).ok()?,
            ..Self::default()
        };
        for &domain in domains {
            if let Some(bytes) = read(&domain_file(dir, domain))? {
                let mut part: DomainSnapshot = serde_json::from_slice(&bytes).ok()?;
                part.history = Vec::new();
                snapshot.domains.insert(part.domain.clone(), part);
            }
        }
        Some(snapshot)
    }

    /// The published files (the history only with `history`), or `None` when they are missing
    /// or unreadable.
    fn load(dir: &Path, history: bool) -> Option<Self> {
        let mut snapshot = Self::default();
        for entry in fs::read_dir(dir).ok()? {
            let path = entry.ok()?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                // Removed by the writer since the listing: a domain no longer in the store.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => return None,
            };
            if path.file_name().is_some_and(|name| name == PASS_FILE) {
                snapshot.last_pass = serde_json::from_slice(&bytes).ok()?;
            } else {
                let mut domain: DomainSnapshot = serde_json::from_slice(&bytes).ok()?;
                if !history {
                    domain.history = Vec::new();
                }
                snapshot.domains.insert(domain.domain.clone(), domain);
            }
        }
        Some(snapshot)
    }

    /// Builds a snapshot from parts.
    pub(crate) fn new(
        domains: BTreeMap<String, DomainSnapshot>,
        last_pass: Option<PassRecord>,
    ) -> Self {
        Self { domains, last_pass }
    }

    /// Every key record, ordered by domain, then selector.
    pub fn keys(&self) -> Vec<KeyRecord> {
        self.domains
            .values()
            .flat_map(|domain| domain.keys.iter().cloned())
            .collect()
    }

    /// Every key record, ordered by domain, then selector, without copying them.
    pub fn into_keys(self) -> Vec<KeyRecord> {
        let count = self.domains.values().map(|domain| domain.keys.len()).sum();
        let mut keys = Vec::with_capacity(count);
        for domain in self.domains.into_values() {
            keys.extend(domain.keys);
        }
        keys
    }

    /// The key records of one domain.
    pub fn domain_keys(&self, domain: &str) -> Vec<KeyRecord> {
        self.domains
            .get(domain)
            .map(|d| d.keys.clone())
            .unwrap_or_default()
    }

    /// The history of one domain, oldest first.
    pub fn history(&self, domain: &str) -> Vec<Event> {
        self.domains
            .get(domain)
            .map(|d| d.history.clone())
            .unwrap_or_default()
    }

    /// What DMARC reports said of `domain`'s selectors (see [`Store::dkim_days`]).
    pub fn dkim_days(&self, domain: &str) -> Vec<DkimDay> {
        self.domains
            .get(domain)
            .map(|d| d.dkim.clone())
            .unwrap_or_default()
    }

    /// The last pass recorded with [`Store::record_pass`].
    pub fn last_pass(&self) -> Option<PassRecord> {
        self.last_pass
    }
}
