//! The sled-backed store.

use std::path::{Path, PathBuf};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::model::{Event, KeyRecord};

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the store in {path}: {detail}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The engine's error.
        detail: String,
    },
    /// The database files are damaged. Nothing was done.
    #[error(
        "the store in {path} is damaged ({detail}); nothing was done: restore the copy the last successful run left in {}, e.g. `mv {path} {path}.damaged && cp -a {} {path}`",
        Store::backup_path(path).display(),
        Store::backup_path(path).display()
    )]
    Damaged {
        /// The store's directory.
        path: PathBuf,
        /// The engine's error.
        detail: String,
    },
    /// Another process has the database open.
    #[error("the store in {path} is in use by another rotor process")]
    Busy {
        /// The store's directory.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("store {path}: {detail}")]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// The engine's error.
        detail: String,
    },
    /// A record could not be decoded: the store is damaged. Nothing was changed.
    #[error(
        "store {path} is damaged: record {key:?} cannot be read ({detail}); nothing was changed, restore {path} from a backup"
    )]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// The damaged record's key.
        key: String,
        /// The decoder's error.
        detail: String,
    },
    /// A record changed since it was read: another writer took a step first.
    #[error("key {domain}/{selector} changed under us (another rotor run?); nothing was written")]
    Conflict {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
    },
}

/// The store: key records and their history, in one directory.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    keys: sled::Tree,
    history: sled::Tree,
}

fn key_id(domain: &str, selector: &str) -> Vec<u8> {
    [domain.as_bytes(), b"\0", selector.as_bytes()].concat()
}

fn domain_prefix(domain: &str) -> Vec<u8> {
    [domain.as_bytes(), b"\0"].concat()
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open().map_err(|err| {
            let detail = err.to_string();
            if detail.contains("could not acquire lock") {
                StoreError::Busy {
                    path: dir.to_owned(),
                }
            } else if matches!(err, sled::Error::Corruption { .. }) {
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
        })?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|err| StoreError::Open {
                path: dir.to_owned(),
                detail: err.to_string(),
            })
        };
        let store = Self {
            path: dir.to_owned(),
            keys: open_tree("keys")?,
            history: open_tree("history")?,
            db,
        };
        store.verify_counts()?;
        Ok(store)
    }

    /// The sidecar file that remembers how many records the store held after its last commit.
    /// Records are never removed, so fewer means sled dropped data while recovering.
    fn counts_file(&self) -> PathBuf {
        self.path.join("rotor-counts")
    }

    fn counts(&self) -> (usize, usize) {
        (self.keys.len(), self.history.len())
    }

    fn verify_counts(&self) -> Result<(), StoreError> {
        let Ok(text) = std::fs::read_to_string(self.counts_file()) else {
            return Ok(());
        };
        let expected: Vec<usize> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let (keys, events) = self.counts();
        match expected.as_slice() {
            [want_keys, want_events] if keys >= *want_keys && events >= *want_events => Ok(()),
            [want_keys, want_events] => Err(StoreError::Damaged {
                path: self.path.clone(),
                detail: format!(
                    "it held {want_keys} keys and {want_events} history events, now {keys} and {events}"
                ),
            }),
            _ => Err(StoreError::Damaged {
                path: self.path.clone(),
                detail: format!("{} is unreadable", self.counts_file().display()),
            }),
        }
    }

    /// Where [`Store::close_and_back_up`] keeps its copy: `<dir>.backup`.
    pub fn backup_path(dir: &Path) -> PathBuf {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(".backup");
        dir.with_file_name(name)
    }

    /// Closes the store and copies it to [`Store::backup_path`] (through a temporary copy and a
    /// rename), so damage found later can be undone.
    pub fn close_and_back_up(self) -> Result<(), StoreError> {
        self.db.flush().map_err(|err| self.io(err))?;
        let path = self.path.clone();
        drop(self);
        let io = |err: std::io::Error| StoreError::Io {
            path: path.clone(),
            detail: format!("backup: {err}"),
        };
        let backup = Self::backup_path(&path);
        let mut temp = backup.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(io)?;
        }
        copy_dir(&path, &temp).map_err(io)?;
        if backup.exists() {
            std::fs::remove_dir_all(&backup).map_err(io)?;
        }
        std::fs::rename(&temp, &backup).map_err(io)
    }

    /// Records the counts after a commit: temporary file, then rename.
    fn save_counts(&self) -> Result<(), StoreError> {
        let (keys, events) = self.counts();
        let temp = self.path.join("rotor-counts.tmp");
        std::fs::write(&temp, format!("{keys} {events}\n"))
            .and_then(|()| std::fs::rename(&temp, self.counts_file()))
            .map_err(|err| self.io(err))
    }

    fn io(&self, err: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            detail: err.to_string(),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
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

    fn scan<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
    ) -> Result<Vec<T>, StoreError> {
        tree.scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(|err| self.io(err))?;
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

    /// Writes every `(before, after)` pair, each only if the stored record still equals
    /// `before` (`None`: the key must not exist yet), and appends `events`; all or nothing,
    /// flushed to disk before it returns.
    pub fn commit(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(changes.len());
        for (before, after) in changes {
            let before = before
                .map(serde_json::to_vec)
                .transpose()
                .map_err(|err| self.io(err))?;
            let after_bytes = serde_json::to_vec(after).map_err(|err| self.io(err))?;
            encoded.push((
                key_id(&after.domain, &after.selector),
                before,
                after_bytes,
                *after,
            ));
        }
        let mut history = Vec::with_capacity(events.len());
        for event in events {
            let seq = self.db.generate_id().map_err(|err| self.io(err))?;
            let key = [
                domain_prefix(&event.domain),
                event.at.to_be_bytes().to_vec(),
                seq.to_be_bytes().to_vec(),
            ]
            .concat();
            history.push((key, serde_json::to_vec(event).map_err(|err| self.io(err))?));
        }
        let result = (&self.keys, &self.history).transaction(|(keys, log)| {
            for (id, before, after, record) in &encoded {
                let current = keys.get(id)?;
                if current.as_deref() != before.as_deref() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                        domain: record.domain.clone(),
                        selector: record.selector.clone(),
                    }));
                }
                keys.insert(id.as_slice(), after.as_slice())?;
            }
            for (key, value) in &history {
                log.insert(key.as_slice(), value.as_slice())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(err)) => return Err(err),
            Err(TransactionError::Storage(err)) => return Err(self.io(err)),
        }
        self.db.flush().map_err(|err| self.io(err))?;
        self.save_counts()
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Phase;

    fn key(selector: &str, phase: Phase) -> KeyRecord {
        KeyRecord {
            phase,
            ..KeyRecord::reserved("example.com", selector, "rsa-2048", "/k".into(), 10)
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
            let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(&path).unwrap();
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
        let err = match Store::open(&path) {
            Ok(store) => store
                .keys()
                .map(|_| ())
                .expect_err("a damaged store is refused"),
            Err(err) => err,
        };
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("store.backup"), "{err}");

        std::fs::remove_dir_all(&path).unwrap();
        std::fs::rename(Store::backup_path(&path), &path).unwrap();
        let restored = Store::open(&path).unwrap();
        assert_eq!(restored.keys().unwrap().len(), 1);
        assert_eq!(restored.history("example.com").unwrap().len(), 1);
    }

    #[test]
    fn a_damaged_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .keys
            .insert(key_id("example.com", "bad"), b"{not json".to_vec())
            .unwrap();
        let err = store.keys().unwrap_err().to_string();
        assert!(err.contains("example.com/bad"), "{err}");
        assert!(err.contains("damaged"), "{err}");
    }
}
