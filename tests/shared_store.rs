//! rotor with its store in PostgreSQL (`store:`): whole rotations through the real binary,
//! against a real BIND and a real PostgreSQL on loopback, the records and history in the
//! database and nothing in a local sled store; a database that restarts under a pass.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use support::postgres::{PASSWORD, Postgres};
use support::{Bind, Rotor, Secondary, Setup, dkimpy_verifies, scratch};

/// A rotor of example.com whose store is `postgres`, its password in a 0600 file.
fn shared(dir: &std::path::Path, bind: &Bind, postgres: &Postgres, instance: &str) -> Rotor {
    let rotor = Rotor::new(dir, bind, Setup::default());
    let secret = dir.join("store-password");
    fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    rotor.edit_config(|config| {
        format!(
            "store:\n  url: {}\n  password_file: {}\n  instance: {instance}\n{config}",
            postgres.url(),
            secret.display()
        )
    });
    rotor
}

#[test]
fn two_rotations_with_the_store_in_postgresql() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let postgres = Postgres::start(&dir.path().join("pg"));
    let rotor = shared(dir.path(), &bind, &postgres, "mx1");
    assert_eq!(
        rotor.status()[0]["waiting_for"],
        "first rotation on the next run"
    );

    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let signer_key = rotor.signer_key_file(&first).expect("KeyTable row");
    for server in bind.servers() {
        dkimpy_verifies(&signer_key, &first, server.port).unwrap();
    }
    rotor.ok(&["rotate", "example.com"]);
    rotor.run_until("the first key retired", |r| {
        r.phases()
            .iter()
            .any(|(s, p)| *s == first && p == "retired")
    });
    let second = rotor.selector_in("active").unwrap();
    assert_ne!(first, second);

    // What the store holds is in the database, and only there.
    assert!(
        !rotor.dir.join("state/store").exists(),
        "no sled store beside the shared one"
    );
    let phases = postgres.psql(
        "rotor",
        "SELECT selector || ' ' || (record::jsonb->>'phase') FROM keys ORDER BY selector",
    );
    let mut expected = [format!("{first} retired"), format!("{second} active")];
    expected.sort();
    assert_eq!(phases.lines().collect::<Vec<_>>(), expected);
    let events: usize = postgres
        .psql(
            "rotor",
            "SELECT count(*) FROM events WHERE domain = 'example.com'",
        )
        .trim()
        .parse()
        .unwrap();
    let history = rotor.ok(&["history", "example.com"]);
    assert_eq!(history.lines().count(), events, "{history}");
    assert!(history.contains(&format!("{first}  retired")), "{history}");
    assert_eq!(
        postgres
            .psql("rotor", "SELECT clean FROM writers WHERE instance = 'mx1'")
            .trim(),
        "t",
        "the last pass closed the store"
    );
    // Nothing is due; the password is never printed.
    assert_eq!(rotor.ok(&["plan"]), "nothing to do now\n");
    for args in [&["status"][..], &["plan", "--json"], &["check"]] {
        let out = rotor.cmd(args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(PASSWORD), "{args:?}: {all}");
    }
}

#[test]
fn a_database_restart_fails_a_pass_cleanly_and_the_next_pass_resumes() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let mut postgres = Postgres::start(&dir.path().join("pg"));
    let rotor = shared(dir.path(), &bind, &postgres, "mx1");
    rotor.ok(&["run"]);
    let (selector, phase) = rotor.phases()[0].clone();
    assert_eq!(phase, "published");
    // The database goes away: a pass fails, saying why, and changes nothing.
    postgres.stop_for_test();
    let out = rotor.cmd(&["run"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unavailable"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    let out = rotor.cmd(&["status"]);
    assert!(!out.status.success(), "status cannot read the store either");
    // Back: the rotation goes on from where it was.
    postgres.start_again();
    rotor.run_until("the key active", |r| r.selector_in("active").is_some());
    assert_eq!(rotor.selector_in("active"), Some(selector));
    let keys: usize = postgres
        .psql("rotor", "SELECT count(*) FROM keys")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        keys, 1,
        "one key, not a second one made while the database was away"
    );
}

/// The state of process `pid` as /proc tells it (`T`: stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn a_rotor_stopped_past_its_lease_is_fenced_and_another_finishes_the_rotation() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let postgres = Postgres::start(&dir.path().join("pg"));
    let one = shared(dir.path(), &bind, &postgres, "mx1");
    one.edit_config(|config| {
        config.replace("  instance: mx1\n", "  instance: mx1\n  lease_for: 3s\n")
    });
    // A second rotor with the same key and signer directories (so that either can finish what
    // the other started), its own lock, and its own name.
    let second = dir.path().join("rotor-mx2.yaml");
    let config = fs::read_to_string(&one.config).unwrap();
    let state = format!("state_dir: {}/state\n", dir.path().display());
    assert!(config.contains(&state));
    fs::write(
        &second,
        config
            .replace(
                &state,
                &format!("state_dir: {}/state-mx2\n", dir.path().display()),
            )
            .replace("  instance: mx1\n", "  instance: mx2\n"),
    )
    .unwrap();
    let two = Rotor {
        dir: one.dir.clone(),
        config: second,
        env: one.env.clone(),
    };

    // mx1's pass stops right after its record reached the DNS server, before it committed that.
    let stalled = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(&one.config)
        .arg("run")
        .env("ROTOR_STOP_AT", "publish:applied")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = stalled.id();
    support::wait_for("mx1 to stop", std::time::Duration::from_secs(30), || {
        process_state(pid) == Some('T')
    });
    let selector = one.phases()[0].0.clone();
    // mx2 takes the domain over once mx1's lease ran out, and finishes the rotation.
    two.run_until("the key active, by mx2", |r| {
        r.selector_in("active").is_some()
    });
    assert_eq!(two.selector_in("active"), Some(selector.clone()));
    let holders = postgres.psql("rotor", "SELECT count(*) FROM leases WHERE holder = 'mx1'");
    assert_eq!(holders.trim(), "0", "mx1's lease was taken over");

    // mx1 wakes up: what it was committing is refused, and it says why.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let out = stalled.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("taken over by another rotor"), "{stderr}");
    // One key, active, its record once on the server; its history has one publication.
    assert_eq!(two.phases(), [(selector.clone(), "active".to_string())]);
    let name = format!("{selector}._domainkey.example.com");
    assert_eq!(bind.primary.txt(&name).len(), 1);
    let history = two.ok(&["history", "example.com"]);
    assert_eq!(
        history
            .lines()
            .filter(|l| l.contains("  published  "))
            .count(),
        1,
        "{history}"
    );
}
