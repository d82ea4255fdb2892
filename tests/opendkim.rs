//! A real OpenDKIM, reloaded by rotor with SIGUSR1: after each swap, a probe message sent through
//! the milter (miltertest) is signed with the new selector, and the signature verifies (dkimpy)
//! against the record on the secondary nameserver.

mod support;

use std::fs;
use std::time::Duration;

use support::opendkim::{probe, signs_with, start_opendkim, tag, verifies};
use support::{Bind, Rotor, Secondary, Setup, scratch, wait_for};

#[test]
fn opendkim_signs_with_each_new_key_and_the_signature_verifies() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let opendkim = start_opendkim(&rotor);
    let pid_file = &opendkim.pid_file;
    let config = fs::read_to_string(&rotor.config).unwrap();
    let reload_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("reload:"))
        .unwrap();
    fs::write(
        &rotor.config,
        config.replace(
            reload_line,
            &format!("    pid_file: {}", pid_file.display()),
        ),
    )
    .unwrap();
    assert!(
        rotor.cmd(&["check"]).status.success(),
        "{}",
        String::from_utf8_lossy(&rotor.cmd(&["check"]).stdout)
    );

    assert_eq!(
        probe(&opendkim),
        None,
        "nothing signs example.com before rotor"
    );
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let in_flight = signs_with(&opendkim, &first);
    assert_eq!(tag(&in_flight, "d"), "example.com");
    assert_eq!(tag(&in_flight, "a"), "rsa-sha256");
    verifies(&in_flight, bind.secondary.port).unwrap();

    rotor.ok(&["rotate", "example.com"]);
    rotor.run_until("second key active", |r| {
        r.selector_in("active").is_some_and(|s| s != first)
    });
    let second = rotor.selector_in("active").unwrap();
    let signature = signs_with(&opendkim, &second);
    verifies(&signature, bind.secondary.port).unwrap();
    // Mail signed with the old key before the swap still verifies during the grace window…
    verifies(&in_flight, bind.secondary.port).unwrap();
    // …and no longer once the old key is retired.
    rotor.run_until("old key retired", |r| r.phases()[0].1 == "retired");
    wait_for(
        "the old record to leave the secondary",
        Duration::from_secs(20),
        || {
            bind.secondary
                .txt(&format!("{first}._domainkey.example.com"))
                .is_empty()
        },
    );
    assert!(verifies(&in_flight, bind.secondary.port).is_err());
    assert_eq!(
        tag(&probe(&opendkim).unwrap(), "s"),
        second,
        "still signing with the active key"
    );
}
