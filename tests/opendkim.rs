//! A real OpenDKIM, reloaded by rotor with SIGUSR1: after each swap, a probe message sent through
//! the milter (miltertest) is signed with the new selector, and the signature verifies (dkimpy)
//! against the record on the secondary nameserver.

mod support;

use std::fs;
use std::time::Duration;

use support::opendkim::{probe, signs_with, start_opendkim, tag, verifies};
use support::{Bind, Rotor, Secondary, Setup, edit_config, reload_line, scratch, wait_for};

#[test]
fn opendkim_signs_with_each_new_key_and_the_signature_verifies() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let opendkim = start_opendkim(&rotor);
    let pid_file = &opendkim.pid_file;
    edit_config(
        &rotor,
        &reload_line(&rotor),
        &format!("    pid_file: {}\n", pid_file.display()),
    );
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

/// Points the config's OpenDKIM at `pid_file` (SIGUSR1 reloads) and its milter socket as the
/// probe: rotor proves each switch with a signature of its own checking.
fn reload_by_signal_and_probe(rotor: &Rotor, pid_file: &std::path::Path, milter: u16) {
    edit_config(
        rotor,
        &reload_line(rotor),
        &format!(
            "    pid_file: {}\n    probe:\n      milter: inet:{milter}@127.0.0.1\n      wait: 20s\n",
            pid_file.display()
        ),
    );
}

/// The `probes` of the key `selector` in `rotor status --json`, for signer mx1.
fn probe_of(rotor: &Rotor, selector: &str) -> serde_json::Value {
    rotor
        .status()
        .into_iter()
        .find(|row| row["selector"] == selector)
        .map(|row| row["probes"]["mx1"].clone())
        .unwrap_or_default()
}

#[test]
fn each_switch_is_proven_by_a_probe_through_the_milter_and_a_reload_that_does_nothing_is_caught() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let opendkim = start_opendkim(&rotor);
    let (pid_file, milter) = (opendkim.pid_file.clone(), opendkim.port);
    reload_by_signal_and_probe(&rotor, &pid_file, milter);
    rotor.ok(&["check"]);

    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let proof = probe_of(&rotor, &first);
    assert_eq!(proof["ok"], true, "{proof}");
    assert!(
        proof["detail"].as_str().unwrap().contains(&format!(
            "the milter at inet:{milter}@127.0.0.1 signed the probe with s={first}"
        )),
        "{proof}"
    );
    assert!(rotor.ok(&["status"]).contains("mx1:proven"));

    // From now on the "reload" does nothing: OpenDKIM keeps its tables in memory, and signs
    // with the first key whatever the files say.
    let config = fs::read_to_string(&rotor.config).unwrap();
    fs::write(
        &rotor.config,
        config
            .replace(
                &format!("pid_file: {}", pid_file.display()),
                "reload: \"true\"",
            )
            .replace("wait: 20s", "wait: 2s"),
    )
    .unwrap();
    rotor.ok(&["rotate", "example.com"]);
    let out = rotor.run_until_it_fails("the switch to be tried");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("signed with s={first}, not s=")),
        "{stderr}"
    );
    assert!(
        stderr.contains("switched back to its previous keys"),
        "{stderr}"
    );
    let second = rotor.selector_in("propagated").expect("the new key waits");
    assert_eq!(rotor.selector_in("active").as_deref(), Some(first.as_str()));
    let disproof = probe_of(&rotor, &second);
    assert_eq!(disproof["ok"], false, "{disproof}");
    // The tables say what OpenDKIM does: the first key signs.
    assert_eq!(rotor.signing_selector().as_deref(), Some(first.as_str()));
    assert_eq!(tag(&probe(&opendkim).unwrap(), "s"), first);

    // A real reload again: the next pass switches, and the probe proves it.
    let config = fs::read_to_string(&rotor.config).unwrap();
    fs::write(
        &rotor.config,
        config
            .replace(
                "reload: \"true\"",
                &format!("pid_file: {}", pid_file.display()),
            )
            .replace("wait: 2s", "wait: 20s"),
    )
    .unwrap();
    rotor.run_until("second key active", |r| {
        r.selector_in("active").as_deref() == Some(second.as_str())
    });
    assert_eq!(probe_of(&rotor, &second)["ok"], true);
}
