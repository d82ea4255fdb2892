//! A damaged store is never run on guesses: it opens with every record intact, or it is
//! refused with `StoreError::Damaged`, naming the backup to restore.

mod common;

use std::path::{Path, PathBuf};

use rotor_state::{Event, KeyRecord, Phase, Store, StoreError};

struct Pristine {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    keys: Vec<KeyRecord>,
    history: Vec<Event>,
}

/// A store after a few passes' worth of commits, closed and backed up.
fn pristine() -> Pristine {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    for n in 0..6u64 {
        let selector = format!("s{n}");
        let generated = KeyRecord::reserved(
            "example.com",
            &selector,
            rotor_state::KeyAlgorithm::Ed25519,
            "/k".into(),
            n,
        );
        let event = |phase| Event {
            at: 100 + n,
            domain: "example.com".into(),
            selector: selector.clone(),
            phase,
            detail: format!("step {n}: {phase}"),
        };
        store
            .commit(&[(None, &generated)], &[event(Phase::Generated)])
            .unwrap();
        let published = KeyRecord {
            phase: Phase::Published,
            record: Some(format!("v=DKIM1; k=ed25519; p={}", "A".repeat(44))),
            ..generated.clone()
        };
        store
            .commit(
                &[(Some(&generated), &published)],
                &[event(Phase::Published)],
            )
            .unwrap();
    }
    let keys = store.keys().unwrap();
    let history = store.history("example.com").unwrap();
    store.close().unwrap();
    Store::back_up(&dir).unwrap();
    Pristine {
        _temp: temp,
        dir,
        keys,
        history,
    }
}

/// Copies the pristine store, damages the copy with `damage`, and checks the outcome.
fn check(pristine: &Pristine, what: &str, damage: impl FnOnce(&Path)) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    common::copy_tree(&pristine.dir, &dir);
    damage(&dir);
    let opened = std::panic::catch_unwind(|| match Store::open(&dir) {
        Ok(store) => {
            let seen = (store.keys(), store.history("example.com"));
            store.close().map(|()| seen)
        }
        Err(err) => Err(err),
    });
    match opened {
        Err(_) => panic!("{what}: opening the store panicked"),
        Ok(Ok((Ok(keys), Ok(history)))) => {
            assert_eq!(keys, pristine.keys, "{what}: opened with keys changed");
            assert_eq!(
                history, pristine.history,
                "{what}: opened with history changed"
            );
        }
        Ok(Ok((Err(err), _) | (_, Err(err)))) | Ok(Err(err)) => {
            assert!(
                matches!(err, StoreError::Damaged { .. }),
                "{what}: refused, but not as damaged: {err}"
            );
            let backup = Store::backup_path(&dir);
            assert!(
                err.to_string().contains(&*backup.to_string_lossy()),
                "{what}: the error does not name the backup: {err}"
            );
        }
    }
}

#[test]
fn a_truncated_db_file_is_refused_or_intact() {
    let pristine = pristine();
    let len = std::fs::metadata(pristine.dir.join("db")).unwrap().len();
    let mut lengths: Vec<u64> = (0..len).step_by(211).collect();
    lengths.extend([1, len / 2, len - 1]);
    for at in lengths {
        check(
            &pristine,
            &format!("db truncated to {at} of {len} bytes"),
            |dir| {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("db"))
                    .unwrap();
                file.set_len(at).unwrap();
            },
        );
    }
}

#[test]
fn flipped_bytes_are_refused_or_intact() {
    let pristine = pristine();
    let len = std::fs::metadata(pristine.dir.join("db")).unwrap().len() as usize;
    for at in (0..len).step_by(97) {
        check(
            &pristine,
            &format!("db byte {at} of {len} flipped"),
            |dir| {
                let path = dir.join("db");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[at] ^= 0x5a;
                std::fs::write(&path, bytes).unwrap();
            },
        );
    }
}

#[test]
fn a_deleted_counts_file_does_not_hide_dropped_records() {
    let pristine = pristine();
    check(&pristine, "rotor-counts deleted", |dir| {
        std::fs::remove_file(dir.join("rotor-counts")).unwrap();
    });
    // Deleted, and sled lost the records written since the start.
    check(&pristine, "rotor-counts deleted, db emptied", |dir| {
        std::fs::remove_file(dir.join("rotor-counts")).unwrap();
        std::fs::write(dir.join("db"), b"").unwrap();
    });
    let err = {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("store");
        common::copy_tree(&pristine.dir, &dir);
        std::fs::remove_file(dir.join("rotor-counts")).unwrap();
        Store::open(&dir)
            .err()
            .expect("a store without its counts is refused")
    };
    assert!(err.to_string().contains("rotor-counts"), "{err}");
}

#[test]
fn a_garbled_counts_file_is_refused() {
    let pristine = pristine();
    for text in ["", "12\n", "x y\n", "0 0 0\n"] {
        check(&pristine, &format!("rotor-counts is {text:?}"), |dir| {
            std::fs::write(dir.join("rotor-counts"), text).unwrap();
        });
    }
}
