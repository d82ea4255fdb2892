//! One suite of the store's guarantees, run against every backend: sled in a directory, and
//! PostgreSQL (a real server on loopback, one per test, started and stopped by the test).

mod records;

use std::collections::BTreeSet;
use std::time::Duration;

use records::key;
use rotor_state::{
    DOMAINS_PER_COMMIT, DkimDay, Event, KeyRecord, Location, Phase, PostgresSettings, SeenReport,
    Store, StoreError,
};
use rotor_testkit::postgres::{PASSWORD, Postgres};

/// Where a test's store is: it can be opened, closed and opened again.
trait Backing {
    fn open(&self) -> Store;
    fn location(&self) -> Location;
}

struct Sled {
    _temp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Backing for Sled {
    fn open(&self) -> Store {
        Store::open(&self.dir).expect("the sled store opens")
    }
    fn location(&self) -> Location {
        Location::Sled(self.dir.clone())
    }
}

fn sled() -> Box<dyn Backing> {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    Box::new(Sled { _temp: temp, dir })
}

struct Pg {
    server: Postgres,
    _temp: tempfile::TempDir,
}

impl Pg {
    fn settings(&self) -> PostgresSettings {
        PostgresSettings {
            url: self.server.url(),
            password: Some(PASSWORD.to_string().into()),
            instance: "test-host".into(),
            tls: None,
            ca_file: None,
        }
    }
}

impl Backing for Pg {
    fn open(&self) -> Store {
        Store::connect(&self.settings()).expect("the PostgreSQL store opens")
    }
    fn location(&self) -> Location {
        Location::Postgres(self.settings())
    }
}

fn start_postgres() -> Pg {
    let temp = tempfile::tempdir().unwrap();
    let server = Postgres::start(&temp.path().join("pg"));
    Pg {
        server,
        _temp: temp,
    }
}

fn postgres() -> Box<dyn Backing> {
    Box::new(start_postgres())
}

fn event(domain: &str, selector: &str, phase: Phase, at: u64) -> Event {
    Event {
        at,
        domain: domain.into(),
        selector: selector.into(),
        phase,
        detail: format!("{phase} at {at}"),
    }
}

fn published(key: &KeyRecord) -> KeyRecord {
    KeyRecord {
        phase: Phase::Published,
        since: 20,
        record: Some("v=DKIM1; k=ed25519; p=AAAA".into()),
        zone: Some("example.com".into()),
        ..key.clone()
    }
}

fn commits_survive_reopening(backing: &dyn Backing) {
    let a = key("example.com", "a");
    let b = key("example.org", "b");
    let store = backing.open();
    store
        .commit(
            &[(None, &a), (None, &b)],
            &[event("example.com", "a", Phase::Generated, 10)],
        )
        .unwrap();
    let a2 = published(&a);
    store
        .commit(
            &[(Some(&a), &a2)],
            &[event("example.com", "a", Phase::Published, 20)],
        )
        .unwrap();
    assert!(store.changed());
    assert_eq!(store.committed_events().len(), 2);
    store.close().unwrap();
    let store = backing.open();
    assert!(!store.changed(), "nothing committed since this open");
    assert_eq!(store.keys().unwrap(), [a2.clone(), b.clone()]);
    assert_eq!(store.domain_keys("example.com").unwrap(), [a2]);
    assert_eq!(store.domain_keys("example.net").unwrap(), []);
    assert_eq!(
        store.history("example.com").unwrap(),
        [
            event("example.com", "a", Phase::Generated, 10),
            event("example.com", "a", Phase::Published, 20)
        ]
    );
    assert_eq!(store.history("example.org").unwrap(), []);
    store.close().unwrap();
}

fn a_stale_write_is_refused_and_changes_nothing(backing: &dyn Backing) {
    let a = key("example.com", "a");
    let store = backing.open();
    store.commit(&[(None, &a)], &[]).unwrap();
    let theirs = published(&a);
    store.commit(&[(Some(&a), &theirs)], &[]).unwrap();
    // Ours, from the record as it was before theirs: refused, with its event, and so is a new
    // key under a selector that exists.
    let ours = KeyRecord {
        phase: Phase::Failed,
        ..a.clone()
    };
    let other = key("example.com", "z");
    let err = store
        .commit(
            &[(Some(&a), &ours), (None, &other)],
            &[event("example.com", "a", Phase::Failed, 30)],
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { domain, selector } if domain == "example.com" && selector == "a"),
        "{err}"
    );
    let err = store.commit(&[(None, &a)], &[]).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(store.keys().unwrap(), [theirs]);
    assert_eq!(store.history("example.com").unwrap(), []);
    store.close().unwrap();
}

fn keys_come_ordered_by_domain_then_selector_byte_by_byte(backing: &dyn Backing) {
    let names = [
        "b.test", "a.test", "a-b.test", "a.test.x", "é.test", "A.test", "ab.test",
    ];
    let keys: Vec<KeyRecord> = names
        .iter()
        .flat_map(|d| [key(d, "s2"), key(d, "S1"), key(d, "s10")])
        .collect();
    let store = backing.open();
    let changes: Vec<_> = keys.iter().map(|k| (None, k)).collect();
    store.commit(&changes, &[]).unwrap();
    let mut expected = keys.clone();
    expected.sort_by(|x, y| (&x.domain, &x.selector).cmp(&(&y.domain, &y.selector)));
    assert_eq!(store.keys().unwrap(), expected);
    store.close().unwrap();
}

fn history_is_oldest_first_and_in_commit_order_within_a_second(backing: &dyn Backing) {
    let store = backing.open();
    let events = [
        event("example.com", "a", Phase::Generated, 50),
        event("example.com", "a", Phase::Published, 50),
        event("example.com", "b", Phase::Generated, 40),
    ];
    store.commit(&[], &events[..2]).unwrap();
    store.commit(&[], &events[2..]).unwrap();
    store
        .commit(&[], &[event("example.com", "a", Phase::Active, 50)])
        .unwrap();
    assert_eq!(
        store.history("example.com").unwrap(),
        [
            events[2].clone(),
            events[0].clone(),
            events[1].clone(),
            event("example.com", "a", Phase::Active, 50)
        ]
    );
    store.close().unwrap();
}

fn the_last_pass_is_remembered_with_the_last_success(backing: &dyn Backing) {
    let store = backing.open();
    assert_eq!(store.last_pass().unwrap(), None);
    store.record_pass(100, None, true).unwrap();
    let failed = store.record_pass(200, None, false).unwrap();
    assert_eq!(
        (failed.at, failed.success, failed.last_success),
        (200, false, Some(100))
    );
    store.close().unwrap();
    let store = backing.open();
    assert_eq!(store.last_pass().unwrap(), Some(failed));
    store.close().unwrap();
}

fn the_due_index_holds_for_its_fingerprint_and_commits_make_domains_due(backing: &dyn Backing) {
    let store = backing.open();
    assert_eq!(
        store.due("f1", 0).unwrap(),
        None,
        "no index yet: plan everything"
    );
    store
        .set_due(
            "f1",
            &[("a.test", 100), ("b.test", 200), ("c.test", u64::MAX)],
            true,
        )
        .unwrap();
    let due = |now| {
        store
            .due("f1", now)
            .unwrap()
            .map(|d| d.into_iter().collect::<Vec<_>>())
    };
    assert_eq!(due(99), Some(vec![]));
    assert_eq!(due(150), Some(vec!["a.test".to_string()]));
    assert_eq!(
        due(u64::MAX - 1).map(|d| d.len()),
        Some(2),
        "u64::MAX is never due"
    );
    assert_eq!(
        store.due("f2", 1000).unwrap(),
        None,
        "another fingerprint: plan everything"
    );
    // A commit makes its domain due at once.
    store.commit(&[(None, &key("b.test", "s"))], &[]).unwrap();
    assert_eq!(due(0), Some(vec!["b.test".to_string()]));
    // With `every`, domains left out are dropped.
    store.set_due("f1", &[("b.test", 300)], true).unwrap();
    assert_eq!(due(u64::MAX - 1), Some(vec!["b.test".to_string()]));
    store.close().unwrap();
}

fn a_report_is_counted_once_and_days_add_up(backing: &dyn Backing) {
    let report = |id: &str| SeenReport {
        org: "google.com".into(),
        report_id: id.into(),
        at: 10,
        source: "imap".into(),
    };
    let day = |pass, fail, org: &str| DkimDay {
        domain: "example.com".into(),
        selector: "s1".into(),
        day: 19_000,
        pass,
        fail,
        other: 0,
        orgs: BTreeSet::from([org.to_string()]),
    };
    let store = backing.open();
    assert!(
        store
            .record_report(&report("r1"), &[day(5, 1, "google.com")])
            .unwrap()
    );
    assert!(
        !store
            .record_report(&report("r1"), &[day(5, 1, "google.com")])
            .unwrap()
    );
    assert!(
        store
            .record_report(&report("r2"), &[day(2, 0, "yahoo.com")])
            .unwrap()
    );
    store.close().unwrap();
    let store = backing.open();
    let days = store.dkim_days("example.com").unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].pass, days[0].fail), (7, 1));
    assert_eq!(
        days[0].orgs,
        BTreeSet::from(["google.com".into(), "yahoo.com".into()])
    );
    assert_eq!(store.seen_reports().unwrap().len(), 2);
    assert_eq!(store.due("none", 0).unwrap(), None);
    store.close().unwrap();
}

fn a_commit_larger_than_one_transaction_lands_whole_or_stops_between_domains(
    backing: &dyn Backing,
) {
    let count = DOMAINS_PER_COMMIT * 2 + 3;
    let domain = |i: usize| format!("d{i:05}.test");
    let keys: Vec<KeyRecord> = (0..count).map(|i| key(&domain(i), "a")).collect();
    let store = backing.open();
    // The last domain's key exists already: its part conflicts, the parts before land.
    let last = &keys[count - 1];
    store.commit(&[(None, last)], &[]).unwrap();
    let changes: Vec<_> = keys.iter().map(|k| (None, k)).collect();
    let events: Vec<Event> = (0..count)
        .map(|i| event(&domain(i), "a", Phase::Generated, 10))
        .collect();
    let err = store.commit(&changes, &events).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let stored = store.keys().unwrap();
    assert_eq!(
        stored.len(),
        DOMAINS_PER_COMMIT * 2 + 1,
        "two whole parts and the old key"
    );
    assert_eq!(store.history(&domain(0)).unwrap().len(), 1);
    assert_eq!(store.history(&domain(count - 2)).unwrap(), []);
    store.close().unwrap();
}

fn a_store_closed_cleanly_says_so_and_one_left_open_does_not(backing: &dyn Backing) {
    backing.open().close().unwrap();
    // A reader in between changes nothing of it.
    backing.location().read(None, true, Duration::ZERO).unwrap();
    let store = backing.open();
    assert!(store.closed_cleanly(), "closed cleanly the time before");
    // A run that dies: its store is never closed.
    drop(store);
    let store = backing.open();
    assert!(!store.closed_cleanly(), "left open the time before");
    store.close().unwrap();
}

fn readers_see_the_store_as_committed_while_a_pass_holds_it_and_after(backing: &dyn Backing) {
    let location = backing.location();
    assert!(
        location
            .read(None, false, Duration::ZERO)
            .unwrap()
            .is_none_or(|s| s.keys().is_empty()),
        "nothing yet"
    );
    let (a, b) = (key("example.com", "a"), key("example.org", "b"));
    let store = backing.open();
    store
        .commit(
            &[(None, &a), (None, &b)],
            &[event("example.com", "a", Phase::Generated, 10)],
        )
        .unwrap();
    store.record_pass(30, None, true).unwrap();
    let day = DkimDay {
        domain: "example.org".into(),
        selector: "b".into(),
        day: 19_000,
        pass: 3,
        fail: 0,
        other: 0,
        orgs: BTreeSet::from(["google.com".to_string()]),
    };
    let report = SeenReport {
        org: "google.com".into(),
        report_id: "r".into(),
        at: 10,
        source: "imap".into(),
    };
    store
        .record_report(&report, std::slice::from_ref(&day))
        .unwrap();
    let check = |whose: &str| {
        let all = location
            .read(None, false, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(all.keys(), [a.clone(), b.clone()], "{whose}");
        assert_eq!(
            all.history("example.com"),
            [],
            "{whose}: without the history"
        );
        assert_eq!(
            all.dkim_days("example.org"),
            std::slice::from_ref(&day),
            "{whose}"
        );
        assert_eq!(all.last_pass().map(|p| p.at), Some(30), "{whose}");
        let one = location
            .read(
                Some(&["example.com", "nothing.example"]),
                true,
                Duration::from_secs(5),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            one.keys(),
            std::slice::from_ref(&a),
            "{whose}: that domain alone"
        );
        assert_eq!(
            one.history("example.com"),
            [event("example.com", "a", Phase::Generated, 10)],
            "{whose}: with the history"
        );
        assert_eq!(one.dkim_days("example.org"), [], "{whose}");
    };
    check("while the pass holds the store");
    store.close().unwrap();
    check("after the pass");
}

fn free_domains_are_leased_and_commits_of_leased_domains_land(backing: &dyn Backing) {
    let store = backing.open();
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store.lease(&["a.test", "b.test"], ttl).unwrap(),
        ["a.test", "b.test"]
    );
    store.commit(&[(None, &key("a.test", "s"))], &[]).unwrap();
    store.close().unwrap();
    // Given back at close: the next pass leases them again.
    let store = backing.open();
    assert_eq!(
        store.lease(&["b.test", "a.test"], ttl).unwrap(),
        ["a.test", "b.test"]
    );
    store.commit(&[(None, &key("b.test", "s"))], &[]).unwrap();
    store.close().unwrap();
}

/// Each check, as a test of every backend: `sled::<check>` and `postgres::<check>`.
macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod sled {
            $(#[test]
            fn $check() {
                super::$check(&*super::sled());
            })*
        }
        mod postgres {
            $(#[test]
            fn $check() {
                super::$check(&*super::postgres());
            })*
        }
    };
}

suite!(
    commits_survive_reopening,
    a_stale_write_is_refused_and_changes_nothing,
    keys_come_ordered_by_domain_then_selector_byte_by_byte,
    history_is_oldest_first_and_in_commit_order_within_a_second,
    the_last_pass_is_remembered_with_the_last_success,
    the_due_index_holds_for_its_fingerprint_and_commits_make_domains_due,
    a_report_is_counted_once_and_days_add_up,
    a_commit_larger_than_one_transaction_lands_whole_or_stops_between_domains,
    readers_see_the_store_as_committed_while_a_pass_holds_it_and_after,
    free_domains_are_leased_and_commits_of_leased_domains_land,
    a_store_closed_cleanly_says_so_and_one_left_open_does_not,
);
