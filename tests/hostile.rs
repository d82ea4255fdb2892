//! Hostile users beside the signer, through the real binary: whoever can write where a signer's
//! keys or tables live (the signer's own user, a group, everybody) must not be able to make rotor
//! hand them a file, follow a link they planted, or lose the owner and group an operator gave a
//! table.

mod support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::time::Duration;

use support::{
    Bind, Rotor, Secondary, Setup, edit_config, id_of, mode, owner, reload_line, scratch, wait_for,
};

/// `rotor run` until its output (stderr and `status --json`) shows `needle`; returns it.
fn run_until_said(rotor: &Rotor, needle: &str) -> String {
    let mut said = String::new();
    wait_for(
        &format!("rotor run to say {needle:?}"),
        Duration::from_secs(60),
        || {
            let out = rotor.cmd(&["run"]);
            said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                serde_json::to_string(&rotor.status()).unwrap()
            );
            said.contains(needle)
        },
    );
    said
}

/// A rotor whose OpenDKIM signer runs as nobody (who gets the key files), with a first key
/// active: the rotor, nobody's uid, the key's selector and the key file nobody holds.
fn signing_as_nobody(dir: &std::path::Path, bind: &Bind) -> (Rotor, u32, String, PathBuf) {
    let rotor = Rotor::new(dir, bind, Setup::default());
    let reload = reload_line(&rotor);
    edit_config(&rotor, &reload, &format!("{reload}    user: nobody\n"));
    let nobody = id_of("passwd", "nobody");
    rotor.run_until("a key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let key_file = rotor.signer_key_file(&first).unwrap();
    (rotor, nobody, first, key_file)
}

/// A forced rotation, run until a key other than `first` is active (the switch installs the
/// replaced key again, kept through its grace window).
fn next_key_active(rotor: &Rotor, first: &str) {
    rotor.ok(&["rotate", "example.com"]);
    rotor.run_until("a second key active", |r| {
        r.selector_in("active").is_some_and(|s| s != first)
    });
}

#[test]
fn a_key_directory_everybody_can_write_is_refused_by_run() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let keys = rotor.signer_dir().join("keys");
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o777)).unwrap();
    let table = fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap();

    let said = run_until_said(&rotor, "is open to others");
    assert!(
        said.contains(&format!("key directory {}", keys.display()))
            && said.contains(&format!("chmod o-rwx {}", keys.display())),
        "the error names the directory and the fix: {said}"
    );
    assert_eq!(
        fs::read_dir(&keys).unwrap().count(),
        0,
        "no key was written"
    );
    assert_eq!(
        fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap(),
        table
    );
}

#[test]
fn a_link_planted_for_a_key_file_is_replaced_not_followed() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let (rotor, nobody, first, key_file) = signing_as_nobody(dir.path(), &bind);
    assert_eq!(owner(&key_file).0, nobody);

    // nobody swaps its key file for a link to a root file with the same bytes and mode.
    let victim = dir.path().join("victim.pem");
    fs::copy(&key_file, &victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(&key_file).unwrap();
    symlink(&victim, &key_file).unwrap();

    // The next switch installs the old key again (kept through its grace window).
    next_key_active(&rotor, &first);
    assert_eq!(owner(&victim), (0, 0), "the link's target keeps its owner");
    assert_eq!(mode(&victim), 0o600);
    let meta = fs::symlink_metadata(&key_file).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by a file"
    );
    assert_eq!(owner(&key_file).0, nobody);
    assert_eq!(fs::read(&key_file).unwrap(), fs::read(&victim).unwrap());
}

#[test]
fn a_table_that_is_a_link_is_refused_and_its_target_not_read() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let table = rotor.signer_dir().join("SigningTable");
    let secret = dir.path().join("secret");
    fs::write(&secret, "SECRET-CONTENT\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(&table).unwrap();
    symlink(&secret, &table).unwrap();

    let said = run_until_said(&rotor, "is a symbolic link");
    assert!(said.contains(&table.display().to_string()), "{said}");
    assert!(
        fs::symlink_metadata(&table)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "SECRET-CONTENT\n");
    assert_eq!(mode(&secret), 0o600);
    let others: Vec<String> = fs::read_dir(rotor.signer_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "SigningTable")
        .map(|name| fs::read_to_string(rotor.signer_dir().join(&name)).unwrap_or_default())
        .collect();
    assert!(
        others.iter().all(|text| !text.contains("SECRET")),
        "the link's target was copied nowhere"
    );
}

#[test]
fn tables_keep_their_owner_group_and_mode_through_a_switch_and_a_rollback() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let nogroup = id_of("group", "nogroup");
    let tables = ["KeyTable", "SigningTable"].map(|name| rotor.signer_dir().join(name));
    for table in &tables {
        std::os::unix::fs::chown(table, Some(0), Some(nogroup)).unwrap();
        fs::set_permissions(table, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let kept = |when: &str| {
        for table in &tables {
            assert_eq!(owner(table), (0, nogroup), "{} {when}", table.display());
            assert_eq!(mode(table), 0o640, "{} {when}", table.display());
        }
    };
    rotor.run_until("a key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    assert_eq!(rotor.signing_selector(), Some(first.clone()));
    kept("after a switch");

    // The next switch fails at the reload: the tables are put back.
    edit_config(&rotor, &reload_line(&rotor), "    reload: \"exit 1\"\n");
    rotor.ok(&["rotate", "example.com"]);
    run_until_said(&rotor, "previous files are restored");
    assert_eq!(rotor.signing_selector(), Some(first));
    kept("after a rollback");
}

#[test]
fn a_hard_link_planted_for_a_key_file_is_replaced_and_its_other_name_untouched() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let (rotor, nobody, first, key_file) = signing_as_nobody(dir.path(), &bind);

    // The key file gets a second name elsewhere (a hard link), then is made to look like the
    // file rotor would write, but owned by root: whatever rotor does with it must not reach the
    // other name.
    let other_name = dir.path().join("elsewhere.pem");
    fs::hard_link(&key_file, &other_name).unwrap();
    std::os::unix::fs::chown(&other_name, Some(0), Some(0)).unwrap();
    let before = fs::read(&other_name).unwrap();

    next_key_active(&rotor, &first);
    assert_eq!(owner(&other_name), (0, 0), "the other name keeps its owner");
    assert_eq!(fs::read(&other_name).unwrap(), before);
    let meta = fs::symlink_metadata(&key_file).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&meta),
        1,
        "rotor's file has one name again"
    );
    assert_eq!(owner(&key_file).0, nobody);
}
