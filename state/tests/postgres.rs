//! What only a shared PostgreSQL store meets: writers on several hosts racing on one key, a
//! server that restarts under a pass, a schema written by a newer rotor, credentials that are
//! wrong or in the wrong place. (What every backend guarantees is in `conformance.rs`.)

mod records;

use std::sync::Barrier;

use records::key;
use rotor_state::{KeyRecord, Phase, PostgresSettings, Store, StoreError};
use rotor_testkit::postgres::{PASSWORD, Postgres};

fn settings(server: &Postgres, instance: &str) -> PostgresSettings {
    PostgresSettings {
        url: server.url(),
        password: Some(PASSWORD.to_string().into()),
        instance: instance.into(),
        tls: None,
        ca_file: None,
    }
}

fn server() -> (Postgres, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    (Postgres::start(&temp.path().join("pg")), temp)
}

#[test]
fn of_two_instances_taking_the_same_step_at_once_one_commits_and_the_other_conflicts() {
    let (server, _temp) = server();
    let one = Store::connect(&settings(&server, "mx1")).unwrap();
    let two = Store::connect(&settings(&server, "mx2")).unwrap();
    for round in 0..20 {
        let domain = format!("d{round}.test");
        let reserved = key(&domain, "s");
        // Both reserve the same new selector, then both move the same record on.
        for step in 0..2 {
            if step == 1 {
                one.commit(&[(None, &reserved)], &[]).unwrap();
            }
            let barrier = Barrier::new(2);
            let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
                let attempts: Vec<_> = [(&one, Phase::Published), (&two, Phase::Failed)]
                    .into_iter()
                    .map(|(store, phase)| {
                        let (reserved, barrier) = (&reserved, &barrier);
                        scope.spawn(move || {
                            let after = KeyRecord {
                                phase,
                                ..reserved.clone()
                            };
                            let before = (step == 1).then_some(reserved);
                            barrier.wait();
                            store.commit(&[(before, &after)], &[])
                        })
                    })
                    .collect();
                attempts.into_iter().map(|a| a.join().unwrap()).collect()
            });
            let won = results.iter().filter(|r| r.is_ok()).count();
            let lost = results
                .iter()
                .filter(|r| matches!(r, Err(StoreError::Conflict { .. })))
                .count();
            assert_eq!(
                (won, lost),
                (1, 1),
                "round {round}, step {step}: {results:?}"
            );
            let stored = one.domain_keys(&domain).unwrap();
            assert_eq!(stored.len(), 1);
            let winner = if results[0].is_ok() {
                Phase::Published
            } else {
                Phase::Failed
            };
            assert_eq!(stored[0].phase, winner, "the winner's record, whole");
            if step == 0 {
                // Back to the start for the second step.
                let current = stored[0].clone();
                server.psql(
                    "rotor",
                    &format!("DELETE FROM keys WHERE domain = '{domain}'"),
                );
                assert_eq!(one.domain_keys(&domain).unwrap(), [], "{current:?} removed");
            }
        }
    }
    one.close().unwrap();
    two.close().unwrap();
}

#[test]
fn a_server_restart_fails_the_call_as_unavailable_and_the_next_connection_finds_everything() {
    let (mut server, _temp) = server();
    let store = Store::connect(&settings(&server, "mx1")).unwrap();
    let a = key("example.com", "a");
    store.commit(&[(None, &a)], &[]).unwrap();
    server.restart();
    let err = store.keys().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    let err = store
        .commit(&[(None, &key("example.com", "b"))], &[])
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    drop(store);
    let store = Store::connect(&settings(&server, "mx1")).unwrap();
    assert_eq!(store.keys().unwrap(), [a]);
    store.close().unwrap();
}

#[test]
fn a_schema_of_a_newer_rotor_is_refused_untouched() {
    let (server, _temp) = server();
    Store::connect(&settings(&server, "mx1"))
        .unwrap()
        .close()
        .unwrap();
    server.psql("rotor", "INSERT INTO rotor_schema (version) VALUES (99)");
    let before = server.psql("rotor", "SELECT count(*) FROM writers");
    let err = Store::connect(&settings(&server, "mx2"))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::Open { .. })
            && text.contains("version 99")
            && text.contains("newer rotor"),
        "{text}"
    );
    assert_eq!(
        server.psql("rotor", "SELECT count(*) FROM writers"),
        before,
        "untouched"
    );
}

#[test]
fn wrong_or_misplaced_credentials_are_refused_without_showing_them() {
    let (server, _temp) = server();
    let wrong = PostgresSettings {
        password: Some("not-the-password-Qx9".to_string().into()),
        ..settings(&server, "mx1")
    };
    let err = Store::connect(&wrong).err().expect("refused").to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    let inline = PostgresSettings {
        url: format!(
            "postgres://rotor:{PASSWORD}@127.0.0.1:{}/rotor",
            server.port
        ),
        password: None,
        ..settings(&server, "mx1")
    };
    let err = Store::connect(&inline).err().expect("refused").to_string();
    assert!(err.contains("holds a password"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    // Nobody listening: unavailable, so the next run retries.
    let port = rotor_testkit::free_port();
    let nobody = PostgresSettings {
        url: format!("postgres://rotor@127.0.0.1:{port}/rotor"),
        ..settings(&server, "mx1")
    };
    let err = Store::connect(&nobody).err().expect("refused");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
}

#[test]
fn a_domain_is_leased_to_one_instance_and_one_that_stalled_past_its_lease_is_fenced() {
    let (server, _temp) = server();
    let one = Store::connect(&settings(&server, "mx1")).unwrap();
    let two = Store::connect(&settings(&server, "mx2")).unwrap();
    let ttl = std::time::Duration::from_secs(1);
    assert_eq!(
        one.lease(&["a.test", "b.test"], ttl).unwrap(),
        ["a.test", "b.test"]
    );
    assert_eq!(
        two.lease(&["a.test", "b.test", "c.test"], ttl).unwrap(),
        ["c.test"],
        "what another holds is skipped"
    );
    // Renewed while the store is open: after three of its times, still mx1's.
    let start = std::time::Instant::now();
    while start.elapsed() < ttl * 3 {
        std::thread::sleep(ttl / 4);
    }
    assert_eq!(two.lease(&["a.test"], ttl).unwrap(), Vec::<String>::new());
    // And while the connection is busy, call after call, as in a long pass.
    let start = std::time::Instant::now();
    while start.elapsed() < ttl * 3 {
        one.keys().unwrap();
    }
    assert_eq!(two.lease(&["a.test"], ttl).unwrap(), Vec::<String>::new());
    let a = key("a.test", "s");
    one.commit(&[(None, &a)], &[]).unwrap();

    // mx1 stalls past its lease (as a process stopped with SIGSTOP would: no renewal), and
    // mx2 takes the domain over.
    server.psql(
        "rotor",
        "UPDATE leases SET expires_at = now() - interval '1 second' WHERE holder = 'mx1' AND domain = 'a.test'",
    );
    assert_eq!(two.lease(&["a.test"], ttl).unwrap(), ["a.test"]);
    let theirs = KeyRecord {
        phase: Phase::Published,
        ..a.clone()
    };
    two.commit(&[(Some(&a), &theirs)], &[]).unwrap();
    // mx1 wakes up and commits what it was doing: refused, nothing written.
    let ours = KeyRecord {
        phase: Phase::Failed,
        ..a.clone()
    };
    let err = one.commit(&[(Some(&theirs), &ours)], &[]).unwrap_err();
    assert!(
        matches!(&err, StoreError::Fenced { domain } if domain == "a.test"),
        "{err}"
    );
    assert_eq!(two.domain_keys("a.test").unwrap(), [theirs]);
    // Its other domain is still its own.
    one.commit(&[(None, &key("b.test", "s"))], &[]).unwrap();
    // Closing gives the leases back at once.
    one.close().unwrap();
    assert_eq!(two.lease(&["b.test"], ttl).unwrap(), ["b.test"]);
    two.close().unwrap();
}

#[test]
fn tls_to_the_database_checks_its_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let secure = Postgres::start_tls(&temp.path().join("pg"));
    let tls = |ca_file: Option<std::path::PathBuf>| PostgresSettings {
        tls: Some(true),
        ca_file,
        ..settings(&secure, "mx1")
    };
    // Issued by the test's CA, for 127.0.0.1: trusted with that CA.
    let store = Store::connect(&tls(Some(secure.ca()))).unwrap();
    store
        .commit(&[(None, &key("example.com", "a"))], &[])
        .unwrap();
    let sessions = |ssl: bool| {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl = {ssl} AND application_name = 'rotor'"
        );
        secure.psql("rotor", &sql).trim().to_string()
    };
    assert_eq!(
        (sessions(true), sessions(false)),
        ("1".to_string(), "0".to_string()),
        "the store's session is over TLS"
    );
    store.close().unwrap();
    // Without the CA, the certificate is not trusted: refused, nothing sent.
    let err = Store::connect(&tls(None))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Asked for TLS, a server without it is refused rather than spoken to in the clear.
    let (plain, _plain_temp) = server();
    let err = Store::connect(&PostgresSettings {
        tls: Some(true),
        ..settings(&plain, "mx1")
    })
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("TLS") || err.contains("tls") || err.contains("SSL"),
        "{err}"
    );
}
