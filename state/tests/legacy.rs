//! A store written by the first rotor (records without `zone_id`, `target`, `signers` and
//! `compromised`, no `meta` tree) is read and written by this one.

mod common;

use std::path::{Path, PathBuf};

use rotor_state::{Event, KeyRecord, Phase, Store};

/// The fixture: a sled store as the first rotor left it after two keys and three events.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-store")
}

/// Two records in the first rotor's layout, with its field order.
const LEGACY_KEYS: [(&str, &str, &str); 2] = [
    (
        "example.com",
        "rotor-202611a",
        r#"{"domain":"example.com","selector":"rotor-202611a","algorithm":"rsa-2048","phase":"active","since":1763900000,"created_at":1763890000,"key_file":"/var/lib/rotor/keys/example.com/rotor-202611a.pem","record":"v=DKIM1; k=rsa; p=MIIB","zone":"example.com","published_at":1763891000,"activated_at":1763900000,"intent":null,"last_check":{"at":1763899000,"servers":[{"server":"127.0.0.1:53","role":"authoritative","ok":true,"detail":"exact record"}]},"error":null}"#,
    ),
    (
        "example.org",
        "rotor-202611a",
        r#"{"domain":"example.org","selector":"rotor-202611a","algorithm":"ed25519","phase":"published","since":1763891000,"created_at":1763890000,"key_file":"/var/lib/rotor/keys/example.org/rotor-202611a.pem","record":"v=DKIM1; k=ed25519; p=AAAA","zone":"example.org","published_at":1763891000,"activated_at":null,"intent":"check_propagation","last_check":null,"error":null}"#,
    ),
];

/// Writes the fixture with sled directly, the way the first rotor laid records out. Run once
/// with `cargo test -p rotor-state --test legacy -- --ignored generate_fixture`; the result is
/// checked in.
#[test]
#[ignore = "generates tests/fixtures/legacy-store"]
fn generate_fixture() {
    let dir = fixture();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let db = sled::Config::new().path(&dir).open().unwrap();
    let keys = db.open_tree("keys").unwrap();
    let history = db.open_tree("history").unwrap();
    for (domain, selector, json) in LEGACY_KEYS {
        let id = [domain.as_bytes(), b"\0", selector.as_bytes()].concat();
        keys.insert(id, json.as_bytes()).unwrap();
    }
    let events = [
        ("example.com", 1763890000u64, "generated"),
        ("example.com", 1763900000, "active"),
        ("example.org", 1763891000, "published"),
    ];
    for (domain, at, phase) in events {
        let seq = db.generate_id().unwrap();
        let key = [
            domain.as_bytes(),
            b"\0",
            &at.to_be_bytes(),
            &seq.to_be_bytes(),
        ]
        .concat();
        let event = format!(
            r#"{{"at":{at},"domain":"{domain}","selector":"rotor-202611a","phase":"{phase}","detail":"{phase}"}}"#
        );
        history.insert(key, event.as_bytes()).unwrap();
    }
    db.flush().unwrap();
    drop((keys, history, db));
    std::fs::write(dir.join("rotor-counts"), "2 3\n").unwrap();
}

#[test]
fn a_store_of_the_first_rotor_is_read_and_a_key_moves_on() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    common::copy_tree(&fixture(), &dir);

    let store = Store::open(&dir).unwrap();
    let keys = store.keys().unwrap();
    assert_eq!(keys.len(), 2);
    let org = keys[1].clone();
    assert_eq!(
        (org.domain.as_str(), org.phase, org.zone_id.as_deref()),
        ("example.org", Phase::Published, None)
    );
    assert!(org.signers.is_empty() && org.compromised.is_none() && org.target.is_none());
    assert_eq!(store.history("example.com").unwrap().len(), 2);

    let propagated = KeyRecord {
        phase: Phase::Propagated,
        since: 1763892000,
        intent: None,
        ..org.clone()
    };
    let event = Event {
        at: 1763892000,
        domain: "example.org".into(),
        selector: org.selector.clone(),
        phase: Phase::Propagated,
        detail: "every server returns the record".into(),
    };
    store
        .commit(&[(Some(&org), &propagated)], &[event])
        .expect("a record of the first rotor can be changed");
    store.close().unwrap();

    let store = Store::open(&dir).unwrap();
    assert_eq!(store.domain_keys("example.org").unwrap(), [propagated]);
    assert_eq!(store.history("example.org").unwrap().len(), 2);
    // The other key, untouched by the commit, still commits after the reopening.
    let com = store.domain_keys("example.com").unwrap()[0].clone();
    let retiring = KeyRecord {
        phase: Phase::Retiring,
        ..com.clone()
    };
    store.commit(&[(Some(&com), &retiring)], &[]).unwrap();
}
