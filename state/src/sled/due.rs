//! When each domain next needs a pass: an index kept so that a pass over 100,000 domains plans
//! only the few with something due, not every domain of the config.
//!
//! Two trees: `due` (key: the time, 8 bytes big-endian, then the domain; no value) gives what
//! is due by a time in one range read, and `due_at` (key: the domain; value: the time) finds a
//! domain's entry. Every commit that changes a domain's keys, history or DMARC evidence makes
//! the domain due at once, in the same transaction ([`mark_due_now`]); otherwise the index is
//! the engine's to write ([`Sled::set_due`]), with the fingerprint of what its plans depend on
//! (the config, rotor's version). An index written for another fingerprint, or none, reads as
//! "plan every domain" ([`Sled::due`]). An entry can only be early (a domain planned for
//! nothing), never late: a step the engine did not foresee comes from a commit, which marks it.

use std::collections::{BTreeSet, HashSet};

use ::sled::Transactional;
use ::sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::error::StoreError;
use crate::sled::Sled;

const FINGERPRINT_KEY: &[u8] = b"due_fingerprint";
/// How many domains [`Sled::set_due`] writes in one transaction.
const CHUNK: usize = 512;

fn due_key(at: u64, domain: &str) -> Vec<u8> {
    [&at.to_be_bytes()[..], domain.as_bytes()].concat()
}

fn time_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Inside a commit's transaction: makes `domain` due at once (time 0), replacing its entry.
pub(crate) fn mark_due_now(
    due: &TransactionalTree,
    due_at: &TransactionalTree,
    domain: &str,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if let Some(old) = due_at.get(domain.as_bytes())?.as_deref().and_then(time_of) {
        if old == 0 {
            return Ok(());
        }
        due.remove(due_key(old, domain))?;
    }
    due.insert(due_key(0, domain), &[][..])?;
    due_at.insert(domain.as_bytes(), &0u64.to_be_bytes()[..])?;
    Ok(())
}

impl Sled {
    /// The domains due by `now` (Unix seconds), per the index written for `fingerprint`;
    /// `None` when the index cannot tell (written for another fingerprint, or never): then every
    /// domain is to be planned.
    pub fn due(&self, fingerprint: &str, now: u64) -> Result<Option<BTreeSet<String>>, StoreError> {
        let written = self
            .meta
            .get(FINGERPRINT_KEY)
            .map_err(|err| self.engine(err))?;
        if written.as_deref() != Some(fingerprint.as_bytes()) {
            return Ok(None);
        }
        let mut due = BTreeSet::new();
        for entry in self.due.range(..due_key(now.saturating_add(1), "")) {
            let (key, _) = entry.map_err(|err| self.engine(err))?;
            let domain = String::from_utf8_lossy(&key[8.min(key.len())..]).into_owned();
            due.insert(domain);
        }
        Ok(Some(due))
    }

    /// Records when each domain of `due` next needs a pass, for plans made with `fingerprint`.
    /// With `every` (the pass planned every domain of the config), the entries of domains not in
    /// `due` (gone from the config) are dropped. Flushed before it returns.
    pub fn set_due(
        &self,
        fingerprint: &str,
        due: &[(&str, u64)],
        every: bool,
    ) -> Result<(), StoreError> {
        let mut gone = Vec::new();
        if every {
            let kept: HashSet<&str> = due.iter().map(|(domain, _)| *domain).collect();
            for entry in self.due_at.iter() {
                let (domain, at) = entry.map_err(|err| self.engine(err))?;
                if !kept.contains(String::from_utf8_lossy(&domain).as_ref()) {
                    gone.push((domain, at));
                }
            }
        }
        // A few hundred domains a transaction: sled holds a transaction's writes in memory, and
        // a full pass writes every domain's. Each domain's two entries change together; the
        // fingerprint comes last, so an index cut short is one the next pass does not trust
        // (when the fingerprint changed) or one whose written entries are right.
        for gone in gone.chunks(CHUNK) {
            let result = (&self.due, &self.due_at).transaction(|(tree, at_of)| {
                for (domain, at) in gone {
                    if let Some(old) = time_of(at) {
                        tree.remove(due_key(old, &String::from_utf8_lossy(domain)))?;
                    }
                    at_of.remove(domain)?;
                }
                Ok(())
            });
            self.finish(result)?;
        }
        for due in due.chunks(CHUNK) {
            let result = (&self.due, &self.due_at).transaction(|(tree, at_of)| {
                for &(domain, at) in due {
                    let old = at_of.get(domain.as_bytes())?;
                    if let Some(old) = old.as_deref().and_then(time_of) {
                        tree.remove(due_key(old, domain))?;
                    }
                    tree.insert(due_key(at, domain), &[][..])?;
                    at_of.insert(domain.as_bytes(), &at.to_be_bytes()[..])?;
                }
                Ok(())
            });
            self.finish(result)?;
        }
        self.db.flush().map_err(|err| self.engine(err))?;
        let written = self.meta.insert(FINGERPRINT_KEY, fingerprint.as_bytes());
        written.map_err(|err| self.engine(err))?;
        self.db.flush().map_err(|err| self.engine(err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, KeyAlgorithm, KeyRecord, Phase};

    fn key(domain: &str) -> KeyRecord {
        KeyRecord::reserved(domain, "s1", KeyAlgorithm::Rsa2048, "/k".into(), 10)
    }

    fn names(due: Option<BTreeSet<String>>) -> Vec<String> {
        due.expect("the index tells").into_iter().collect()
    }

    #[test]
    fn an_index_for_another_fingerprint_or_none_plans_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        assert_eq!(store.due("a", 100).unwrap(), None);
        store.set_due("a", &[("x.example", 200)], true).unwrap();
        assert_eq!(store.due("b", 100).unwrap(), None);
        assert!(names(store.due("a", 100).unwrap()).is_empty());
        assert_eq!(names(store.due("a", 200).unwrap()), ["x.example"]);
    }

    #[test]
    fn a_domain_is_due_at_its_time_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        store
            .set_due("f", &[("a.example", 300), ("b.example", 100)], true)
            .unwrap();
        assert_eq!(names(store.due("f", 99).unwrap()), Vec::<String>::new());
        assert_eq!(names(store.due("f", 100).unwrap()), ["b.example"]);
        // Moving b later leaves no entry behind at its old time.
        store.set_due("f", &[("b.example", 400)], false).unwrap();
        assert!(names(store.due("f", 299).unwrap()).is_empty());
        assert_eq!(names(store.due("f", 300).unwrap()), ["a.example"]);
        assert_eq!(
            names(store.due("f", 400).unwrap()),
            ["a.example", "b.example"]
        );
    }

    #[test]
    fn every_commit_makes_its_domains_due_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        store
            .set_due("f", &[("a.example", 900), ("b.example", 900)], true)
            .unwrap();
        let a = key("a.example");
        store.commit(&[(None, &a)], &[]).unwrap();
        let event = Event {
            at: 20,
            domain: "b.example".into(),
            selector: "s1".into(),
            phase: Phase::Active,
            detail: String::new(),
        };
        store.commit(&[], &[event]).unwrap();
        assert_eq!(
            names(store.due("f", 10).unwrap()),
            ["a.example", "b.example"]
        );
        // A failed commit (a conflict) marks nothing.
        store.set_due("f", &[("a.example", 900)], false).unwrap();
        assert!(store.commit(&[(None, &a)], &[]).is_err());
        assert_eq!(names(store.due("f", 10).unwrap()), ["b.example"]);
    }

    #[test]
    fn a_full_pass_drops_the_domains_gone_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        store
            .set_due("f", &[("a.example", 5), ("b.example", 5)], true)
            .unwrap();
        store.set_due("g", &[("a.example", 5)], true).unwrap();
        assert_eq!(names(store.due("g", 10).unwrap()), ["a.example"]);
        assert!(store.due_at.get("b.example").unwrap().is_none());
    }

    #[test]
    fn the_index_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Sled::open(dir.path()).unwrap();
            store.set_due("f", &[("a.example", 50)], true).unwrap();
            store.close().unwrap();
        }
        let store = Sled::open(dir.path()).unwrap();
        assert_eq!(names(store.due("f", 50).unwrap()), ["a.example"]);
    }
}
