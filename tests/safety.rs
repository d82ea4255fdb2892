//! Promises checked from outside, through the binary, on the test BIND: what rotor does when
//! the config, the clock or other processes move under it.

mod support;

use std::fs;

use support::{Bind, Rotor, Secondary, Setup, scratch};

/// A domain taken out of the config leaves its keys in the store, its record in DNS and its
/// rows in the signer: rotor must not forget them silently.
#[test]
fn keys_of_a_domain_removed_from_the_config_are_shown_and_warned_about() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let active = rotor.selector_in("active").unwrap();
    let config = fs::read_to_string(&rotor.config)
        .unwrap()
        .replace("- name: example.com", "- name: example.net");
    fs::write(&rotor.config, config).unwrap();

    let out = rotor.cmd(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a warning");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let orphan = rows
        .iter()
        .find(|row| row["domain"] == "example.com")
        .expect("the orphan key is listed");
    assert_eq!(orphan["selector"], active.as_str());
    assert!(
        orphan["waiting_for"]
            .as_str()
            .unwrap()
            .contains("no longer in the config"),
        "{orphan}"
    );
    let check = rotor.cmd(&["status", "--check"]);
    let line = String::from_utf8_lossy(&check.stdout);
    assert!(
        line.starts_with("ROTOR WARNING - ") && line.contains("example.com has keys"),
        "{line}"
    );
    let out = rotor.cmd(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARN  example.com has keys in the store"),
        "{text}"
    );
    // Nothing was touched: the record and the signer row stay.
    assert_eq!(
        bind.primary
            .txt(&format!("{active}._domainkey.example.com"))
            .len(),
        1
    );
    // A run (which fails on example.net, unknown to this BIND) leaves example.com alone.
    let _ = rotor.cmd(&["run"]);
    assert_eq!(rotor.signing_selector().as_deref(), Some(active.as_str()));
}

/// `authoritative: auto` asks every nameserver of the zone; one whose name has no address
/// cannot be asked, so it cannot count as having the record: the check fails and names it
/// (it was skipped silently). Here that is found before a selector is even reserved.
#[test]
fn with_authoritative_auto_a_nameserver_without_an_address_fails_the_check() {
    let dir = scratch();
    let bind = Bind::with_records(
        &dir.path().join("bind"),
        Secondary::Notified,
        &[("example.com", "@ IN NS ns9.example.org.")],
    );
    let resolver = bind.resolver(&dir.path().join("resolver"));
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let config = fs::read_to_string(&rotor.config).unwrap();
    let listed = format!(
        "authoritative: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n    resolvers: [\"127.0.0.1:{}\"]",
        bind.primary.port, bind.secondary.port, bind.secondary.port
    );
    assert!(config.contains(&listed));
    let auto = format!(
        "authoritative: auto\n    resolvers: [\"127.0.0.1:{}\"]",
        resolver.port
    );
    fs::write(&rotor.config, config.replace(&listed, &auto)).unwrap();
    let out = rotor.cmd(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nameserver ns9.example.org of example.com has no address"),
        "{stderr}"
    );
    assert!(rotor.phases().is_empty(), "nothing reserved or published");
    assert!(bind.dkim_records().iter().all(|(s, _)| s == "other"));
}

/// Runs, readers, a daemon and a forced rotation all at once on one state directory, as a
/// timer, a monitoring check and an operator would: exactly one run acts at a time (the others exit 75
/// and do nothing), no reader ever fails or makes a run fail, and each step happens once.
#[test]
fn runs_and_readers_at_once_never_fail_and_never_act_twice() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let mut config = fs::read_to_string(&rotor.config).unwrap();
    config.push_str("schedule: \"* * * * * *\"\n");
    fs::write(&rotor.config, config).unwrap();
    // A daemon passing every second beside the timer's runs and the readers.
    // (Killed and waited for on drop if the test fails first.)
    let log = dir.path().join("daemon.log");
    let mut daemon = support::Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("--config")
            .arg(&rotor.config)
            .arg("daemon")
            .env_remove("RUST_LOG")
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let rotor = &rotor;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let retired = || {
        rotor
            .phases()
            .iter()
            .filter(|(_, phase)| phase == "retired")
            .count()
            >= 2
    };
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for worker in 0..3 {
            workers.push(scope.spawn(move || {
                let mut codes = Vec::new();
                while !retired() && std::time::Instant::now() < deadline {
                    let args: &[&str] = if worker == 2 {
                        &["rotate", "example.com"]
                    } else {
                        &["run"]
                    };
                    let out = rotor.cmd(args);
                    let code = out.status.code();
                    assert!(
                        matches!(code, Some(0 | 75)),
                        "rotor {args:?} exited {code:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    codes.push(code);
                }
                codes
            }));
        }
        for _ in 0..2 {
            workers.push(scope.spawn(move || {
                let mut codes = Vec::new();
                while !retired() && std::time::Instant::now() < deadline {
                    for args in [
                        &["status", "--json"][..],
                        &["history", "example.com"],
                        &["plan"],
                    ] {
                        let out = rotor.cmd(args);
                        assert!(
                            out.status.success(),
                            "rotor {args:?} exited {:?}: {}",
                            out.status.code(),
                            String::from_utf8_lossy(&out.stderr)
                        );
                        codes.push(out.status.code());
                    }
                }
                codes
            }));
        }
        let codes: Vec<Option<i32>> = workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect();
        assert!(
            codes.contains(&Some(75)),
            "some runs found the lock held: the test raced as intended"
        );
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.0.wait().unwrap();
    let stderr = fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the daemon ended well: {stderr}");
    assert!(
        !stderr.contains("ERROR"),
        "no pass of the daemon failed: {stderr}"
    );
    assert!(retired(), "two rotations finished: {:?}", rotor.phases());
    // Every transition of every key is in the history exactly once.
    let out = rotor.cmd(&["history", "example.com", "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for event in &events {
        let key = (event["selector"].to_string(), event["phase"].to_string());
        if event["phase"] != "generated" && event["phase"] != "published" {
            assert!(seen.insert(key.clone()), "{key:?} twice in {events:#?}");
        }
    }
    // Every record belongs to a key whose life is not over (a forced rotation may still be
    // under way): nothing orphaned, nothing twice.
    let phases = rotor.phases();
    let records = bind.dkim_records();
    for (selector, _) in records.iter().filter(|(s, _)| s != "other") {
        assert!(
            phases
                .iter()
                .any(|(s, p)| s == selector && p != "retired" && p != "failed"),
            "orphan record {selector}: {phases:?}"
        );
    }
    let unique: std::collections::BTreeSet<&String> = records.iter().map(|(s, _)| s).collect();
    assert_eq!(unique.len(), records.len(), "{records:?}");
}

/// A reload that hangs (`sleep` standing for a stuck `systemctl reload`) used to hold the pass
/// and its lock for ever, later runs exiting 75 (which a timer takes for success). It is killed
/// after the signer's `timeout`, with its process group, and the switch is undone.
#[test]
fn a_hanging_reload_is_killed_and_the_switch_undone() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let marker = dir.path().join("reload-started");
    support::edit_config(
        &rotor,
        &support::reload_line(&rotor),
        &format!(
            "    reload: \"touch {} && sleep 4242 && echo unreachable\"\n    timeout: 1s\n",
            marker.display()
        ),
    );
    support::wait_for(
        "the switch attempted",
        std::time::Duration::from_secs(60),
        || {
            let out = rotor.cmd(&["run"]);
            assert_ne!(out.status.code(), Some(75), "never locked out");
            marker.exists()
        },
    );
    let rows = rotor.status();
    let error = rows[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("timed out after 1s"), "{rows:#?}");
    assert!(
        !error.contains("sleep 4242"),
        "the command line is never shown: {error}"
    );
    assert!(rotor.selector_in("propagated").is_some(), "{rows:#?}");
    assert_eq!(rotor.signing_selector(), None, "the tables were put back");
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "sleep 4242"])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "the hanging reload is gone");
}
