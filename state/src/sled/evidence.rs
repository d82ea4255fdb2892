//! DMARC evidence in the store: which aggregate reports were counted (by reporting
//! organisation and report id, so a report seen twice counts once) and, per domain, selector
//! and day, how many messages the reports saw pass, fail or otherwise.

use std::collections::BTreeSet;

use ::sled::Transactional;
use ::sled::transaction::ConflictableTransactionError;

use crate::error::StoreError;
use crate::model::{DkimDay, SeenReport};
use crate::sled::Sled;
use crate::sled::due::mark_due_now;

const SEEN: &[u8] = b"seen\0";
const DAY: &[u8] = b"day\0";

fn seen_key(org: &str, report_id: &str) -> Vec<u8> {
    [SEEN, org.as_bytes(), b"\0", report_id.as_bytes()].concat()
}

fn day_prefix(domain: &str) -> Vec<u8> {
    [DAY, domain.as_bytes(), b"\0"].concat()
}

fn day_key(day: &DkimDay) -> Vec<u8> {
    [
        day_prefix(&day.domain),
        day.selector.as_bytes().to_vec(),
        b"\0".to_vec(),
        day.day.to_be_bytes().to_vec(),
    ]
    .concat()
}

impl Sled {
    /// Counts `report`'s `days` (adding to what earlier reports said of each selector and day),
    /// unless a report with the same organisation and id was counted already: then nothing
    /// changes and `false` is returned. All or nothing, flushed to disk before it returns.
    pub fn record_report(&self, report: &SeenReport, days: &[DkimDay]) -> Result<bool, StoreError> {
        let seen = seen_key(&report.org, &report.report_id);
        let encoded = self.encode(report)?;
        let domains: BTreeSet<&str> = days.iter().map(|day| day.domain.as_str()).collect();
        let trees = (&self.reports, &self.due, &self.due_at);
        let result = trees.transaction(|(tree, due, due_at)| {
            if tree.get(&seen)?.is_some() {
                return Ok(false);
            }
            // What the reports say may open a gate: the domains are planned in this pass.
            for domain in &domains {
                mark_due_now(due, due_at, domain)?;
            }
            tree.insert(seen.as_slice(), encoded.as_slice())?;
            for day in days {
                let key = day_key(day);
                let mut total: DkimDay = match tree.get(&key)? {
                    Some(bytes) => self
                        .decode(&key, &bytes)
                        .map_err(ConflictableTransactionError::Abort)?,
                    None => DkimDay {
                        pass: 0,
                        fail: 0,
                        other: 0,
                        orgs: Default::default(),
                        ..day.clone()
                    },
                };
                total.pass += day.pass;
                total.fail += day.fail;
                total.other += day.other;
                total.orgs.extend(day.orgs.iter().cloned());
                let bytes = self
                    .encode(&total)
                    .map_err(ConflictableTransactionError::Abort)?;
                tree.insert(key, bytes)?;
            }
            Ok(true)
        });
        let counted = self.finish(result)?;
        if counted {
            self.db.flush().map_err(|err| self.engine(err))?;
            self.publish(&domains.into_iter().collect::<Vec<_>>());
        }
        Ok(counted)
    }

    /// What the reports said of `domain`'s selectors, by selector, then day.
    pub fn dkim_days(&self, domain: &str) -> Result<Vec<DkimDay>, StoreError> {
        self.reports
            .scan_prefix(day_prefix(domain))
            .map(|entry| {
                let (key, value) = entry.map_err(|err| self.engine(err))?;
                self.decode(&key, &value)
            })
            .collect()
    }

    /// What the reports said of every domain, by domain, then selector, then day.
    pub(crate) fn dkim_day_items(&self) -> impl Iterator<Item = Result<DkimDay, StoreError>> + '_ {
        self.reports.scan_prefix(DAY).map(|entry| {
            let (key, value) = entry.map_err(|err| self.engine(err))?;
            self.decode(&key, &value)
        })
    }

    /// Every report counted.
    pub fn seen_reports(&self) -> Result<Vec<SeenReport>, StoreError> {
        self.reports
            .scan_prefix(SEEN)
            .map(|entry| {
                let (key, value) = entry.map_err(|err| self.engine(err))?;
                self.decode(&key, &value)
            })
            .collect()
    }

    /// Checks that every evidence record decodes (on open, with the rest).
    pub(crate) fn verify_evidence(&self) -> Result<(), StoreError> {
        for entry in self.reports.iter() {
            let (key, value) = entry.map_err(|err| self.engine(err))?;
            if key.starts_with(SEEN) {
                self.decode_damaged::<SeenReport>(&key, &value)?;
            } else {
                self.decode_damaged::<DkimDay>(&key, &value)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn day(selector: &str, day: u64, pass: u64, fail: u64, org: &str) -> DkimDay {
        DkimDay {
            domain: "example.com".into(),
            selector: selector.into(),
            day,
            pass,
            fail,
            other: 0,
            orgs: BTreeSet::from([org.to_string()]),
        }
    }

    fn seen(org: &str, id: &str) -> SeenReport {
        SeenReport {
            org: org.into(),
            report_id: id.into(),
            at: 1,
            source: "dir /r".into(),
        }
    }

    #[test]
    fn reports_add_up_per_selector_and_day_and_a_report_seen_twice_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        assert!(
            store
                .record_report(&seen("google.com", "1"), &[day("a", 0, 5, 1, "google.com")])
                .unwrap()
        );
        assert!(
            !store
                .record_report(&seen("google.com", "1"), &[day("a", 0, 5, 1, "google.com")])
                .unwrap()
        );
        assert!(
            store
                .record_report(
                    &seen("yahoo.com", "1"),
                    &[
                        day("a", 0, 2, 0, "yahoo.com"),
                        day("b", 86_400, 0, 3, "yahoo.com")
                    ]
                )
                .unwrap()
        );
        store.close().unwrap();
        let store = Sled::open(dir.path()).unwrap();
        let days = store.dkim_days("example.com").unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(
            (days[0].selector.as_str(), days[0].pass, days[0].fail),
            ("a", 7, 1)
        );
        assert_eq!(
            days[0].orgs,
            BTreeSet::from(["google.com".into(), "yahoo.com".into()])
        );
        assert_eq!((days[1].selector.as_str(), days[1].fail), ("b", 3));
        assert_eq!(store.seen_reports().unwrap().len(), 2);
        assert!(store.dkim_days("example.org").unwrap().is_empty());
    }
}
