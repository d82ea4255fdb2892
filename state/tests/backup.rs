//! The backup is replaced atomically: at every moment there is a complete one.

use std::path::{Path, PathBuf};

use rotor_state::{KeyRecord, Store, StoreError};

fn key(selector: &str) -> KeyRecord {
    KeyRecord::reserved(
        "example.com",
        selector,
        rotor_state::KeyAlgorithm::Ed25519,
        "/k".into(),
        10,
    )
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// The selectors in the backup of `dir`, read from a copy (opening it would tidy it).
fn backed_up(dir: &Path) -> Vec<String> {
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(Store::backup_path(dir))
        .arg(copy.path().join("store"))
        .status()
        .unwrap();
    assert!(status.success());
    let store = Store::open(&copy.path().join("store")).unwrap();
    store
        .keys()
        .unwrap()
        .into_iter()
        .map(|k| k.selector)
        .collect()
}

#[test]
fn a_backup_interrupted_before_the_new_copy_was_renamed_in_leaves_the_old_one() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    store.commit(&[(None, &key("a"))], &[]).unwrap();
    store.close().unwrap();
    Store::back_up(&dir).unwrap();
    let store = Store::open(&dir).unwrap();
    store.commit(&[(None, &key("b"))], &[]).unwrap();
    store.close().unwrap();

    // The state a crash leaves after the old backup was set aside, the new copy half written.
    let backup = Store::backup_path(&dir);
    let old = sibling(&backup, ".old");
    let partial = sibling(&backup, ".tmp");
    std::fs::rename(&backup, &old).unwrap();
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("db"), b"half").unwrap();

    let store = Store::open(&dir).unwrap();
    assert!(!old.exists() && !partial.exists());
    assert_eq!(backed_up(&dir), ["a"]);
    store.close().unwrap();

    Store::back_up(&dir).unwrap();
    assert_eq!(backed_up(&dir), ["a", "b"]);
    assert!(!old.exists() && !partial.exists());
}

#[test]
fn a_backup_interrupted_after_the_new_copy_was_renamed_in_keeps_the_new_one() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    store.commit(&[(None, &key("a"))], &[]).unwrap();
    store.close().unwrap();
    Store::back_up(&dir).unwrap();
    let backup = Store::backup_path(&dir);
    let old = sibling(&backup, ".old");
    // The crash came before the old backup was removed.
    std::process::Command::new("cp")
        .arg("-a")
        .arg(&backup)
        .arg(&old)
        .status()
        .unwrap();
    Store::back_up(&dir).unwrap();
    assert!(!old.exists());
    assert_eq!(backed_up(&dir), ["a"]);
}

#[test]
fn an_open_store_is_not_backed_up() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    let err = Store::back_up(&dir).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    store.close().unwrap();
    Store::back_up(&dir).unwrap();
}

#[test]
fn the_backup_leaves_out_the_snapshot_and_a_restored_store_publishes_it_again() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let store = Store::open(&dir).unwrap();
    store.commit(&[(None, &key("a"))], &[]).unwrap();
    store.close().unwrap();
    Store::back_up(&dir).unwrap();
    let backup = Store::backup_path(&dir);
    assert!(dir.join("rotor-snapshot").is_dir());
    assert!(!backup.join("rotor-snapshot").exists());

    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::rename(&backup, &dir).unwrap();
    let store = Store::open(&dir).unwrap();
    assert!(dir.join("rotor-snapshot").is_dir());
    let seen = rotor_state::Snapshot::read(&dir, std::time::Duration::ZERO).unwrap();
    assert_eq!(seen.keys(), [key("a")]);
    store.close().unwrap();
}
