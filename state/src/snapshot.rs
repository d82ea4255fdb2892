//! What readers (`status`, `history`, `plan`) see while a pass has the store open: the writer
//! publishes the store's content in `<dir>/rotor-snapshot/` as a journal of files, each written
//! whole and renamed into place: a *base* holding every domain (its keys, evidence and history,
//! one JSON line per domain), then one *log* per commit holding the domains it changed (the same
//! lines, later ones replacing earlier ones). When the logs outgrow the base, the next
//! publication writes a new base in their stead and removes the old files. sled has no
//! read-only mode and locks its files exclusively: a reader that waited for the store would
//! wait for the whole pass. When the store is free, readers read it directly (briefly holding
//! its lock: a pass that starts meanwhile waits with [`Store::open_waiting`]).
//!
//! A reader sees only committed data, and the store as of one commit: the newest base and its
//! logs in order (a prefix of the commits; one that finds a file removed under it by a new base
//! reads again). One file per commit, not one per domain: a commit of 10,000 domains creates one
//! file, not 10,000 (on a filesystem without a journal, ext4 scans every recently deleted inode
//! before it allocates a new one, so replacing a file per domain grew with the square of them).
//! After a writer died between a commit and its publication, readers see the store as of the
//! commit before until the next writer opens the store, which publishes everything again.
//!
//! A writer that closes the store with everything published leaves a mark in the snapshot
//! ([`MARK_FILE`]: the store's record counts and the system's boot id); the next writer that
//! finds the mark matching removes it and goes on appending logs to the files it finds, so an
//! idle pass writes nothing. A writer that dies leaves no mark (it was removed at open), and a
//! power loss (which may lose the unflushed snapshot files) changes the boot id: either way, the
//! next writer publishes everything again.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::StoreError;
use crate::model::{DkimDay, Event, KeyRecord, PassRecord};
use crate::sled::Sled;
use crate::sled::durable::{
    create_temp, put_in_place, remove_file_if_present, replace_file, sync_dir, temp_path,
};

/// The file that holds the last pass.
const PASS_FILE: &str = "last-pass.json";
/// The mark of a snapshot complete as of the store's last close (not `.json`: readers skip it).
const MARK_FILE: &str = "published";
/// Where Linux tells the boot's random id (changes with every boot).
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// How many logs a base takes before the next publication writes a new base.
const MAX_LOGS: u64 = 512;
/// How many bytes of logs a base takes, beyond its own size, before a new base is written.
const LOG_SLACK: u64 = 1 << 20;
/// How many times a reader starts again when a new base replaced the files it was reading.
const READ_ATTEMPTS: usize = 16;

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

/// The base of generation `generation`.
fn base_file(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("base-{generation:016x}.jsonl"))
}

/// The log of commit `seq` after the base of generation `generation`.
fn log_file(dir: &Path, generation: u64, seq: u64) -> PathBuf {
    dir.join(format!("log-{generation:016x}-{seq:016x}.jsonl"))
}

/// A file of the journal, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JournalFile {
    Base(u64),
    Log(u64, u64),
}

impl JournalFile {
    fn of(name: &str) -> Option<Self> {
        let hex = |text: &str| {
            (text.len() == 16)
                .then(|| u64::from_str_radix(text, 16).ok())
                .flatten()
        };
        let stem = name.strip_suffix(".jsonl")?;
        if let Some(generation) = stem.strip_prefix("base-") {
            return hex(generation).map(Self::Base);
        }
        let (generation, seq) = stem.strip_prefix("log-")?.split_once('-')?;
        Some(Self::Log(hex(generation)?, hex(seq)?))
    }
}

/// The journal's files in `dir`: the newest base's generation, and that base's logs in order.
fn listing(dir: &Path) -> io::Result<Option<(u64, Vec<u64>)>> {
    let mut parts = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Some(part) = JournalFile::of(&entry?.file_name().to_string_lossy()) {
            parts.push(part);
        }
    }
    let newest = parts
        .iter()
        .filter_map(|part| match part {
            JournalFile::Base(generation) => Some(*generation),
            JournalFile::Log(..) => None,
        })
        .max();
    Ok(newest.map(|newest| {
        let mut logs: Vec<u64> = parts
            .iter()
            .filter_map(|part| match part {
                JournalFile::Log(generation, seq) if *generation == newest => Some(*seq),
                _ => None,
            })
            .collect();
        logs.sort_unstable();
        (newest, logs)
    }))
}

/// Where the writer is in its journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Journal {
    generation: u64,
    /// The next log's number.
    next: u64,
    base_bytes: u64,
    log_bytes: u64,
    logs: u64,
}

impl Journal {
    /// The journal left in `dir` (by a writer that closed the store with everything
    /// published), or `None` where there is no base.
    pub(crate) fn find(dir: &Path) -> io::Result<Option<Self>> {
        let Some((generation, logs)) = listing(dir)? else {
            return Ok(None);
        };
        let size = |path: PathBuf| fs::metadata(path).map(|meta| meta.len());
        let mut log_bytes = 0;
        for &seq in &logs {
            log_bytes += size(log_file(dir, generation, seq))?;
        }
        Ok(Some(Self {
            generation,
            next: logs.last().map_or(0, |last| last + 1),
            base_bytes: size(base_file(dir, generation))?,
            log_bytes,
            logs: logs.len() as u64,
        }))
    }

    /// Whether the logs outgrew the base: the next publication writes a new one.
    pub(crate) fn full(&self) -> bool {
        self.logs >= MAX_LOGS || self.log_bytes > self.base_bytes + LOG_SLACK
    }
}

/// One domain's keys and history.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DomainSnapshot {
    /// The domain (first: a reader of some domains tells a line by its start).
    pub domain: String,
    /// Its keys, ordered by selector.
    pub keys: Vec<KeyRecord>,
    /// Its history, oldest first.
    pub history: Vec<Event>,
    /// What DMARC reports said of its selectors, by selector, then day.
    #[serde(default)]
    pub dkim: Vec<DkimDay>,
}

/// A line of the journal without its history (skipped, not kept).
#[derive(Deserialize)]
struct Present {
    domain: String,
    keys: Vec<KeyRecord>,
    #[serde(default)]
    dkim: Vec<DkimDay>,
}

impl From<Present> for DomainSnapshot {
    fn from(line: Present) -> Self {
        Self {
            domain: line.domain,
            keys: line.keys,
            history: Vec::new(),
            dkim: line.dkim,
        }
    }
}

/// A line of the journal, its history kept only with `history`.
fn parse_line(line: &[u8], history: bool) -> serde_json::Result<DomainSnapshot> {
    if history {
        serde_json::from_slice(line)
    } else {
        serde_json::from_slice::<Present>(line).map(DomainSnapshot::from)
    }
}

/// Appends `domain` to `lines`, as one line of the journal.
pub(crate) fn push_line(lines: &mut Vec<u8>, domain: &DomainSnapshot) -> io::Result<()> {
    serde_json::to_writer(&mut *lines, domain).map_err(io::Error::other)?;
    lines.push(b'\n');
    Ok(())
}

/// Publishes one commit's domains (`lines`, from [`push_line`]) as the next log. Not flushed to
/// disk: the snapshot is derived data, and every writer that opens the store after a crash
/// publishes it again.
pub(crate) fn publish_log(dir: &Path, journal: &mut Journal, lines: &[u8]) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    replace_file(
        &log_file(dir, journal.generation, journal.next),
        lines,
        false,
    )?;
    journal.next += 1;
    journal.logs += 1;
    journal.log_bytes += lines.len() as u64;
    Ok(())
}

/// Writes the last pass's file.
pub(crate) fn publish_pass(dir: &Path, pass: Option<&PassRecord>) -> io::Result<()> {
    let bytes = serde_json::to_vec(&pass).map_err(io::Error::other)?;
    replace_file(&dir.join(PASS_FILE), &bytes, false)
}

/// A new base, written domain by domain ([`Base::push`]) and then published in place of the
/// journal ([`Base::finish`]): the first time into a temporary directory renamed into place (so
/// a reader never sees part of it), later as the next generation's base, the older journal
/// (and files of an older rotor's layout) removed behind it. Never all of it in memory.
pub(crate) struct Base {
    /// The snapshot's directory.
    dir: PathBuf,
    /// Where the base is written: `dir`, or its temporary directory the first time.
    target: PathBuf,
    generation: u64,
    file: io::BufWriter<fs::File>,
}

impl Base {
    /// Starts the next base of the snapshot in `dir`.
    pub(crate) fn start(dir: &Path) -> io::Result<Self> {
        let (target, generation) = if dir.exists() {
            let newest = listing(dir)?.map_or(0, |(generation, _)| generation);
            (dir.to_owned(), newest + 1)
        } else {
            let temp = temp_path(dir);
            crate::sled::durable::remove_dir_if_present(&temp)?;
            fs::create_dir(&temp)?;
            (temp, 1)
        };
        let file = create_temp(&base_file(&target, generation))?;
        Ok(Self {
            dir: dir.to_owned(),
            target,
            generation,
            file: io::BufWriter::new(file),
        })
    }

    /// Adds `domain`'s line.
    pub(crate) fn push(&mut self, domain: &DomainSnapshot) -> io::Result<()> {
        serde_json::to_writer(&mut self.file, domain).map_err(io::Error::other)?;
        self.file.write_all(b"\n")
    }

    /// Publishes the base, with the last pass's file, and removes what it replaces.
    pub(crate) fn finish(self, pass: Option<&PassRecord>) -> io::Result<Journal> {
        let Self {
            dir,
            target,
            generation,
            file,
        } = self;
        let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
        let base_bytes = file.metadata()?.len();
        put_in_place(file, &base_file(&target, generation), false)?;
        publish_pass(&target, pass)?;
        let journal = Journal {
            generation,
            base_bytes,
            ..Journal::default()
        };
        if target != dir {
            fs::rename(&target, &dir)?;
            sync_dir(crate::sled::durable::parent(&dir))?;
            return Ok(journal);
        }
        let keep: HashSet<PathBuf> = [
            base_file(&dir, generation),
            dir.join(PASS_FILE),
            dir.join(MARK_FILE),
        ]
        .into();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if !keep.contains(&path) {
                remove_file_if_present(&path)?;
            }
        }
        Ok(journal)
    }
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

/// The start of a journal line: its domain.
#[derive(Serialize)]
struct Named<'a> {
    domain: &'a str,
}

/// The last pass's file and the journal's files (the newest base, then its logs in order), as
/// one moment's listing shows them; read again when a new base replaced them meanwhile.
/// `None` when nothing is published or a file cannot be read.
fn read_journal(dir: &Path) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    for _ in 0..READ_ATTEMPTS {
        let (generation, logs) = listing(dir).ok()??;
        let pass = fs::read(dir.join(PASS_FILE)).ok()?;
        let paths = std::iter::once(base_file(dir, generation))
            .chain(logs.iter().map(|&seq| log_file(dir, generation, seq)));
        let mut files = Vec::with_capacity(logs.len() + 1);
        for path in paths {
            match fs::read(&path) {
                Ok(bytes) => files.push(bytes),
                // Removed by the writer since the listing: a newer base holds it all.
                Err(err) if err.kind() == io::ErrorKind::NotFound => break,
                Err(_) => return None,
            }
        }
        if files.len() == logs.len() + 1 {
            return Some((pass, files));
        }
    }
    None
}

/// What a reader reads of the store.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// Everything (the history only with `history`).
    All { history: bool },
    /// These domains (their history only with `history`).
    Domains {
        domains: &'a [&'a str],
        history: bool,
    },
}

/// A consistent view of the store for readers, taken without stopping a writer.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Ordered by domain, each once.
    domains: Vec<DomainSnapshot>,
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

    /// [`Snapshot::read`] of `domains` only (the others are absent from what it returns), the
    /// history only with `history`: what `rotor status DOMAIN` and `rotor history DOMAIN`
    /// need, read without the rest of a large store.
    pub fn read_domains(
        dir: &Path,
        timeout: Duration,
        domains: &[&str],
        history: bool,
    ) -> Result<Self, StoreError> {
        Self::read_with(dir, timeout, Part::Domains { domains, history })
    }

    fn read_with(dir: &Path, timeout: Duration, part: Part<'_>) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + timeout;
        let store = loop {
            match Sled::open_to_read(dir) {
                // A writer holds the store: what it published, as soon as there is something
                // (a writer that just opened the store publishes it a moment later).
                Err(StoreError::Busy { .. }) => {
                    let published = match part {
                        Part::All { history } => Self::load(&snapshot_dir(dir), history),
                        Part::Domains { domains, history } => {
                            Self::load_domains(&snapshot_dir(dir), domains, history)
                        }
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
            Part::All { history } => store.read(None, history)?,
            Part::Domains { domains, history } => store.read(Some(domains), history)?,
        };
        store.close()?;
        Ok(snapshot)
    }

    /// The published journal's lines of `domains` and the last pass (the history only with
    /// `history`), or `None` when nothing is published or a file cannot be read.
    fn load_domains(dir: &Path, domains: &[&str], history: bool) -> Option<Self> {
        // A domain's line starts with its name (see `DomainSnapshot`).
        let start = |domain: &&str| {
            let mut json = serde_json::to_vec(&Named { domain }).ok()?;
            // Other fields follow: a comma, not the closing brace.
            json.pop();
            json.push(b',');
            Some(json)
        };
        let starts: Vec<Vec<u8>> = domains.iter().map(start).collect::<Option<_>>()?;
        Self::load_lines(dir, |line| {
            starts
                .iter()
                .any(|start| line.starts_with(start))
                .then(|| parse_line(line, history))
        })
    }

    /// The published journal (the history only with `history`), or `None` when it is missing
    /// or unreadable.
    fn load(dir: &Path, history: bool) -> Option<Self> {
        Self::load_lines(dir, |line| Some(parse_line(line, history)))
    }

    /// The last pass and the domains `parse` takes from the journal's lines (the newest base,
    /// then its logs in order: a later line of a domain replaces an earlier one), or `None`
    /// when nothing is published or a file or a line cannot be read.
    fn load_lines(
        dir: &Path,
        mut parse: impl FnMut(&[u8]) -> Option<serde_json::Result<DomainSnapshot>>,
    ) -> Option<Self> {
        let (pass, files) = read_journal(dir)?;
        // Every publication of a base writes the pass's file.
        let last_pass = serde_json::from_slice(&pass).ok()?;
        let mut domains = BTreeMap::new();
        for bytes in &files {
            for line in bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                if let Some(domain) = parse(line) {
                    let domain = domain.ok()?;
                    domains.insert(domain.domain.clone(), domain);
                }
            }
        }
        Some(Self::new(domains.into_values().collect(), last_pass))
    }

    /// Builds a snapshot from parts: `domains` as the store lists them (by domain, each once).
    pub(crate) fn new(mut domains: Vec<DomainSnapshot>, last_pass: Option<PassRecord>) -> Self {
        // Only a record whose content names another domain than its key could upset the
        // order: looked up by halves, the list must be sorted all the same.
        if !domains.is_sorted_by(|a, b| a.domain <= b.domain) {
            domains.sort_by(|a, b| a.domain.cmp(&b.domain));
        }
        Self { domains, last_pass }
    }

    /// `domain`'s part.
    fn find(&self, domain: &str) -> Option<&DomainSnapshot> {
        self.domains
            .binary_search_by(|theirs| theirs.domain.as_str().cmp(domain))
            .ok()
            .map(|at| &self.domains[at])
    }

    /// Every key record, ordered by domain, then selector.
    pub fn keys(&self) -> Vec<KeyRecord> {
        self.domains
            .iter()
            .flat_map(|domain| domain.keys.iter().cloned())
            .collect()
    }

    /// Every key record, ordered by domain, then selector, without copying them.
    pub fn into_keys(self) -> Vec<KeyRecord> {
        let count = self.domains.iter().map(|domain| domain.keys.len()).sum();
        let mut keys = Vec::with_capacity(count);
        for domain in self.domains {
            keys.extend(domain.keys);
        }
        keys
    }

    /// The key records of one domain.
    pub fn domain_keys(&self, domain: &str) -> Vec<KeyRecord> {
        self.find(domain)
            .map(|d| d.keys.clone())
            .unwrap_or_default()
    }

    /// The history of one domain, oldest first.
    pub fn history(&self, domain: &str) -> Vec<Event> {
        self.find(domain)
            .map(|d| d.history.clone())
            .unwrap_or_default()
    }

    /// What DMARC reports said of `domain`'s selectors (see [`Store::dkim_days`]).
    pub fn dkim_days(&self, domain: &str) -> Vec<DkimDay> {
        self.find(domain)
            .map(|d| d.dkim.clone())
            .unwrap_or_default()
    }

    /// Each domain that DMARC reports spoke of, with what they said of its selectors (see
    /// [`Store::dkim_days`]), ordered by domain.
    pub fn dkim(&self) -> impl Iterator<Item = (&str, &[DkimDay])> {
        self.domains
            .iter()
            .filter(|d| !d.dkim.is_empty())
            .map(|d| (d.domain.as_str(), d.dkim.as_slice()))
    }

    /// The last pass recorded with [`Store::record_pass`].
    pub fn last_pass(&self) -> Option<PassRecord> {
        self.last_pass
    }
}
