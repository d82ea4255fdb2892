//! Readers (`status`, `history`, `plan`) and a pass share the store without stopping each other.

mod records;

use std::sync::mpsc;
use std::time::Duration;

use records::key;
use rotor_state::{Event, KeyRecord, Phase, Snapshot, Store, StoreError};

fn event(domain: &str, selector: &str, phase: Phase) -> Event {
    Event {
        at: 10,
        domain: domain.into(),
        selector: selector.into(),
        phase,
        detail: String::new(),
    }
}

#[test]
fn a_writer_waits_for_a_reader_that_has_the_store_open() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    Store::open(&dir).unwrap().close().unwrap();

    let (opened, reader_has_it) = mpsc::channel();
    let (go, writer_waits) = mpsc::channel();
    let reader = std::thread::spawn({
        let dir = dir.clone();
        move || {
            let store = Store::open(&dir).unwrap();
            opened.send(()).unwrap();
            // Held until the writer says it is waiting.
            writer_waits.recv().unwrap();
            store.close().unwrap();
        }
    });
    reader_has_it.recv().unwrap();
    assert!(matches!(Store::open(&dir), Err(StoreError::Busy { .. })));

    let mut waits = 0;
    let store = Store::open_waiting(&dir, Duration::from_secs(60), || {
        waits += 1;
        go.send(()).unwrap();
    })
    .expect("the writer opens the store once the reader closed it");
    assert_eq!(waits, 1, "on_wait is called once");
    store
        .commit(&[(None, &key("example.com", "a"))], &[])
        .unwrap();
    reader.join().unwrap();
}

#[test]
fn waiting_for_a_store_that_stays_open_ends_busy() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let _held = Store::open(&dir).unwrap();
    let mut waits = 0;
    let err = Store::open_waiting(&dir, Duration::from_millis(50), || waits += 1)
        .err()
        .expect("busy");
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert_eq!(waits, 1);
}

#[test]
fn a_reader_sees_every_commit_while_the_writer_holds_the_store() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let writer = Store::open(&dir).unwrap();
    let empty = Snapshot::read(&dir, Duration::ZERO).expect("no lock needed");
    assert!(empty.keys().is_empty());

    let a = key("example.com", "a");
    let b = key("example.org", "b");
    writer
        .commit(
            &[(None, &a), (None, &b)],
            &[event("example.com", "a", Phase::Generated)],
        )
        .unwrap();
    let published = KeyRecord {
        phase: Phase::Published,
        ..a.clone()
    };
    writer
        .commit(
            &[(Some(&a), &published)],
            &[event("example.com", "a", Phase::Published)],
        )
        .unwrap();
    writer.record_pass(20, None, true).unwrap();

    let seen = Snapshot::read(&dir, Duration::ZERO).expect("no lock needed");
    assert_eq!(seen.keys(), [published.clone(), b.clone()]);
    assert_eq!(seen.domain_keys("example.org"), std::slice::from_ref(&b));
    let phases: Vec<Phase> = seen
        .history("example.com")
        .iter()
        .map(|e| e.phase)
        .collect();
    assert_eq!(phases, [Phase::Generated, Phase::Published]);
    assert!(seen.history("example.org").is_empty());
    assert_eq!(seen.last_pass().map(|pass| pass.at), Some(20));
    // The writer still holds the store.
    assert!(matches!(Store::open(&dir), Err(StoreError::Busy { .. })));
}

#[test]
fn a_free_store_is_read_itself_so_its_damage_is_reported() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    let a = key("example.com", "a");
    store.commit(&[(None, &a)], &[]).unwrap();
    store.close().unwrap();
    let seen = Snapshot::read(&dir, Duration::ZERO).unwrap();
    assert_eq!(seen.keys(), std::slice::from_ref(&a));
    std::fs::remove_file(dir.join("rotor-counts")).unwrap();
    let err = Snapshot::read(&dir, Duration::ZERO).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
}

#[test]
fn a_reader_waits_for_the_writer_when_nothing_was_published() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let writer = Store::open(&dir).unwrap();
    writer
        .commit(&[(None, &key("example.com", "a"))], &[])
        .unwrap();
    // As a store of an older rotor: nothing published.
    std::fs::remove_dir_all(dir.join("rotor-snapshot")).unwrap();
    let err = Snapshot::read(&dir, Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    // Closing publishes what a commit could not; then garbled (a power loss before the files
    // reached the disk): the same.
    writer
        .commit(&[(None, &key("example.com", "b"))], &[])
        .unwrap();
    writer.close().unwrap();
    assert!(dir.join("rotor-snapshot").is_dir());
    let _writer = Store::open(&dir).unwrap();
    for entry in std::fs::read_dir(dir.join("rotor-snapshot")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"").unwrap();
    }
    let err = Snapshot::read(&dir, Duration::from_millis(20)).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
}

/// The inode of each published file (not the mark): a file published again is a new one.
fn published(dir: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir.join("rotor-snapshot"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, entry.metadata().unwrap().ino())
        })
        .filter(|(name, _)| name != "published")
        .collect()
}

/// The published files whose name starts with `prefix`, in order.
fn journal_files(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = published(dir)
        .into_keys()
        .filter(|name| name.starts_with(prefix))
        .map(|name| dir.join("rotor-snapshot").join(name))
        .collect();
    files.sort();
    files
}

#[test]
fn a_writer_publishes_nothing_again_after_a_clean_close_but_everything_after_a_crash() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    store
        .commit(
            &[
                (None, &key("a.example", "s")),
                (None, &key("b.example", "s")),
            ],
            &[event("a.example", "s", Phase::Generated)],
        )
        .unwrap();
    store.close().unwrap();
    let before = published(&dir);
    // The base, one log (the commit's two domains in one file) and the last pass.
    assert_eq!(before.len(), 3, "{before:?}");
    assert_eq!(journal_files(&dir, "log-").len(), 1, "{before:?}");

    // Closed with everything published: the next writer rewrites no file.
    let store = Store::open(&dir).unwrap();
    assert_eq!(published(&dir), before);
    // A writer that dies (here: never closes) after a commit whose publication was lost.
    let a = key("a.example", "s");
    let b = KeyRecord {
        phase: Phase::Published,
        ..a.clone()
    };
    store.commit(&[(Some(&a), &b)], &[]).unwrap();
    let logs = journal_files(&dir, "log-");
    assert_eq!(logs.len(), 2, "one more log for the commit");
    drop(store);
    std::fs::remove_file(logs.last().unwrap()).unwrap();
    let store = Store::open_waiting(&dir, Duration::from_secs(10), || {}).unwrap();
    assert!(
        journal_files(&dir, "log-").is_empty(),
        "a new base in their stead"
    );
    let base = journal_files(&dir, "base-");
    assert_eq!(base.len(), 1, "the old base removed");
    let again = std::fs::read_to_string(&base[0]).unwrap();
    assert!(
        again.contains(r#""phase":"published""#),
        "published again: {again}"
    );
    store.close().unwrap();
    // A reader that found the store free and read it itself marks nothing.
    std::fs::write(dir.join("rotor-snapshot/published"), b"").unwrap();
    let seen = Snapshot::read(&dir, Duration::ZERO).unwrap();
    assert_eq!(seen.domain_keys("a.example"), [b]);
    let before = published(&dir);
    Store::open(&dir).unwrap().close().unwrap();
    assert_ne!(published(&dir), before, "the garbled mark is not trusted");
}

#[test]
fn a_reader_of_some_domains_gets_theirs_alone_with_and_without_a_writer() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let writer = Store::open(&dir).unwrap();
    let (a, b, c) = (
        key("example.com", "a"),
        key("example.org", "b"),
        key("example.net", "c"),
    );
    writer
        .commit(
            &[(None, &a), (None, &b), (None, &c)],
            &[event("example.com", "a", Phase::Generated)],
        )
        .unwrap();
    writer.record_pass(20, None, true).unwrap();
    let wanted = ["example.com", "example.net", "nokeys.example"];
    let check = |seen: Snapshot, whose: &str| {
        assert_eq!(seen.keys(), [a.clone(), c.clone()], "{whose}");
        assert!(
            seen.history("example.com").is_empty(),
            "{whose}: no history"
        );
        assert_eq!(seen.last_pass().map(|pass| pass.at), Some(20), "{whose}");
    };
    // With the history: that of the domains asked for, and only theirs.
    let check_history = |seen: Snapshot, whose: &str| {
        assert_eq!(seen.keys(), [a.clone(), c.clone()], "{whose}");
        assert_eq!(
            seen.history("example.com"),
            [event("example.com", "a", Phase::Generated)],
            "{whose}"
        );
        assert!(seen.history("example.org").is_empty(), "{whose}");
    };
    // Held: what the writer published.
    check(
        Snapshot::read_domains(&dir, Duration::ZERO, &wanted, false).unwrap(),
        "published",
    );
    check_history(
        Snapshot::read_domains(&dir, Duration::ZERO, &wanted, true).unwrap(),
        "published, with the history",
    );
    writer.close().unwrap();
    // Free: the store itself.
    check(
        Snapshot::read_domains(&dir, Duration::ZERO, &wanted, false).unwrap(),
        "store",
    );
    check_history(
        Snapshot::read_domains(&dir, Duration::ZERO, &wanted, true).unwrap(),
        "store, with the history",
    );
}

#[test]
fn readers_racing_a_writer_see_every_domain_as_of_one_commit_across_new_bases() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let writer = Store::open(&dir).unwrap();
    let mut a = key("a.example", "s");
    let mut b = key("b.example", "s");
    writer.commit(&[(None, &a), (None, &b)], &[]).unwrap();
    let commits = 700; // more logs than a base takes: new bases while the readers read
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let (mut reads, mut last) = (0, String::new());
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let seen = Snapshot::read_present(&dir, Duration::ZERO)
                            .expect("a reader never waits for the writer");
                        let [a, b] = ["a.example", "b.example"]
                            .map(|domain| seen.domain_keys(domain)[0].error.clone());
                        assert_eq!(a, b, "both domains as of the same commit");
                        let now = a.unwrap_or_default();
                        assert!(now >= last, "never back in time: {now} after {last}");
                        (reads, last) = (reads + 1, now);
                    }
                    (reads, last)
                })
            })
            .collect();
        for i in 0..commits {
            let (next_a, next_b) = (
                KeyRecord {
                    error: Some(format!("{i:05}")),
                    ..a.clone()
                },
                KeyRecord {
                    error: Some(format!("{i:05}")),
                    ..b.clone()
                },
            );
            writer
                .commit(&[(Some(&a), &next_a), (Some(&b), &next_b)], &[])
                .unwrap();
            (a, b) = (next_a, next_b);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for reader in readers {
            let (reads, _) = reader.join().unwrap();
            assert!(reads > 0);
        }
    });
    let seen = Snapshot::read_present(&dir, Duration::ZERO).unwrap();
    assert_eq!(seen.domain_keys("a.example"), [a]);
    assert_eq!(journal_files(&dir, "base-").len(), 1, "older bases removed");
    let logs = journal_files(&dir, "log-").len();
    assert!(logs < commits, "logs folded into a new base: {logs}");
}

#[test]
fn a_snapshot_of_an_older_layout_is_replaced_whole() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    let a = key("example.com", "a");
    store.commit(&[(None, &a)], &[]).unwrap();
    drop(store);
    // An older rotor's file per domain (hex-encoded name), with keys it no longer has.
    let old = dir.join("rotor-snapshot/6578616d706c652e6f7267.json");
    let stale = r#"{"domain":"example.org","keys":[],"history":[]}"#;
    std::fs::write(&old, stale).unwrap();
    let _writer = Store::open_waiting(&dir, Duration::from_secs(10), || {}).unwrap();
    assert!(!old.exists(), "the older layout's files are removed");
    let seen = Snapshot::read(&dir, Duration::ZERO).unwrap();
    assert_eq!(seen.keys(), [a]);
}
