//! Commits larger than one transaction: written domain by domain in parts, each domain whole,
//! and read back (from the store itself and from the readers' snapshot) the same.

mod records;

use std::time::Duration;

use records::key;
use rotor_state::{
    DOMAINS_PER_COMMIT, DkimDay, Event, KeyRecord, Phase, SeenReport, Snapshot, Store, StoreError,
};

fn domain(i: usize) -> String {
    format!("d{i:05}.test")
}

fn event(domain: &str, selector: &str) -> Event {
    Event {
        at: 10,
        domain: domain.into(),
        selector: selector.into(),
        phase: Phase::Generated,
        detail: String::new(),
    }
}

/// Two keys and one event for each of `count` domains.
fn reservations(count: usize) -> (Vec<KeyRecord>, Vec<Event>) {
    let keys = (0..count)
        .flat_map(|i| [key(&domain(i), "a"), key(&domain(i), "b")])
        .collect();
    let events = (0..count).map(|i| event(&domain(i), "a")).collect();
    (keys, events)
}

fn added(keys: &[KeyRecord]) -> Vec<(Option<&KeyRecord>, &KeyRecord)> {
    keys.iter().map(|key| (None, key)).collect()
}

#[test]
fn a_commit_of_more_domains_than_a_transaction_holds_lands_whole_and_reads_the_same_everywhere() {
    let count = 2 * DOMAINS_PER_COMMIT + 3;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let (keys, events) = reservations(count);
    {
        let store = Store::open(&dir).unwrap();
        store.commit(&added(&keys), &events).unwrap();
        // Evidence for some domains only, so that the trees read side by side differ.
        let days: Vec<DkimDay> = [1, DOMAINS_PER_COMMIT, count - 1]
            .iter()
            .map(|&i| DkimDay {
                domain: domain(i),
                selector: "a".into(),
                day: 86_400,
                pass: 3,
                fail: 0,
                other: 0,
                orgs: ["example.net".to_string()].into(),
            })
            .collect();
        let report = SeenReport {
            org: "example.net".into(),
            report_id: "1".into(),
            at: 20,
            source: "test".into(),
        };
        assert!(store.record_report(&report, &days).unwrap());
        store.close().unwrap();
    }

    // The store itself, read while free.
    let free = Snapshot::read(&dir, Duration::ZERO).unwrap();
    assert_eq!(free.keys(), keys);
    for i in [0, DOMAINS_PER_COMMIT - 1, DOMAINS_PER_COMMIT, count - 1] {
        let phases: Vec<Phase> = free.history(&domain(i)).iter().map(|e| e.phase).collect();
        assert_eq!(phases, [Phase::Generated], "{}", domain(i));
    }
    assert_eq!(free.dkim_days(&domain(DOMAINS_PER_COMMIT))[0].pass, 3);
    assert!(free.dkim_days(&domain(2)).is_empty());

    // A writer that finds no mark of a clean close (as after a crash) publishes everything
    // anew, domain by domain: readers see the same.
    std::fs::remove_file(dir.join("rotor-snapshot/published")).unwrap();
    let writer = Store::open(&dir).unwrap();
    let published = Snapshot::read(&dir, Duration::ZERO).expect("no lock needed");
    assert!(matches!(Store::open(&dir), Err(StoreError::Busy { .. })));
    assert_eq!(published.keys(), keys);
    for i in 0..count {
        assert_eq!(published.history(&domain(i)), free.history(&domain(i)));
        assert_eq!(published.dkim_days(&domain(i)), free.dkim_days(&domain(i)));
    }
    drop(writer);
}

#[test]
fn a_conflict_in_a_later_part_keeps_the_parts_before_and_writes_nothing_after() {
    let count = 3 * DOMAINS_PER_COMMIT;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    let (keys, _) = reservations(count);
    store.commit(&added(&keys), &[]).unwrap();

    let published: Vec<KeyRecord> = keys
        .iter()
        .map(|key| KeyRecord {
            phase: Phase::Published,
            ..key.clone()
        })
        .collect();
    let events: Vec<Event> = (0..count).map(|i| event(&domain(i), "b")).collect();
    // One key of a domain in the second part was changed by someone else meanwhile.
    let stale = DOMAINS_PER_COMMIT + 7;
    let theirs = KeyRecord {
        error: Some("changed elsewhere".into()),
        ..keys[2 * stale].clone()
    };
    store
        .commit(&[(Some(&keys[2 * stale]), &theirs)], &[])
        .unwrap();
    let changes: Vec<_> = keys.iter().map(Some).zip(&published).collect();
    let err = store.commit(&changes, &events).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { domain: d, .. } if *d == domain(stale)),
        "{err}"
    );

    for i in 0..count {
        let name = domain(i);
        let stored = store.domain_keys(&name).unwrap();
        let history = store.history(&name).unwrap();
        if i < DOMAINS_PER_COMMIT {
            assert!(stored.iter().all(|k| k.phase == Phase::Published), "{name}");
            assert_eq!(history.len(), 1, "{name}");
        } else {
            // The part with the conflict and every part after it: untouched, both keys.
            assert!(stored.iter().all(|k| k.phase == Phase::Generated), "{name}");
            assert!(history.is_empty(), "{name}");
        }
    }
    store.close().unwrap();
    // The record counts kept with the store agree with what was written.
    Store::open(&dir).unwrap().close().unwrap();
}
