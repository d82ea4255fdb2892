//! Kill `rotor` at every side-effect boundary (`ROTOR_CRASH_AT` aborts the process there, as a
//! power cut would) and show that the next runs finish the rotation with every rule intact:
//! no duplicate or orphan records, no orphan keys, never a signer on an unpropagated key, and
//! the old record kept until its grace window is over.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;

use support::{Bind, Rotor, Secondary, Setup, scratch};

/// Checks the rules after any run, crashed or not.
fn check_rules(bind: &Bind, rotor: &Rotor, context: &str) {
    let phases = rotor.phases();
    let phase_of = |selector: &str| {
        phases
            .iter()
            .find(|(s, _)| s == selector)
            .map(|(_, p)| p.as_str())
    };
    let records = bind.dkim_records();

    // Never a signer on a key whose record is not visible on both nameservers.
    if let Some(signing) = rotor.signing_selector() {
        let name = format!("{signing}._domainkey.example.com");
        for server in bind.servers() {
            support::wait_for(
                &format!("{context}: {name} on port {}", server.port),
                std::time::Duration::from_secs(10),
                || server.txt(&name).len() == 1,
            );
        }
        let key = rotor
            .signer_key_file(&signing)
            .expect("the signing key has a KeyTable row");
        support::dkimpy_verifies(&key, &signing, bind.secondary.port)
            .unwrap_or_else(|err| panic!("{context}: signer key does not match DNS: {err}"));
    }
    // At most one record per selector; every rotor record belongs to a key rotor tracks.
    let selectors: Vec<&String> = records.iter().map(|(s, _)| s).collect();
    let unique: BTreeSet<&String> = selectors.iter().copied().collect();
    assert_eq!(
        selectors.len(),
        unique.len(),
        "{context}: duplicate records {records:?}"
    );
    for (selector, _) in &records {
        if selector != "other" {
            assert!(
                phase_of(selector).is_some(),
                "{context}: orphan record at {selector}"
            );
        }
    }
    // A key still in use by a signer, or in its grace window, stays published.
    for (selector, phase) in &phases {
        if phase == "active" || phase == "retiring" {
            let tables = fs::read_to_string(rotor.signer_dir().join("KeyTable")).unwrap();
            if phase == "retiring" && !tables.contains(&format!("{selector}._domainkey")) {
                continue; // taken out of the signer: retirement under way
            }
            assert!(
                records.iter().any(|(s, _)| s == selector),
                "{context}: {selector} ({phase}) not published"
            );
        }
    }
    // A crash inside an atomic write leaves its temporary file (which may hold a private key):
    // never readable by others, and gone after the next run.
    let crashed = context.starts_with("right after the crash");
    for dir in [
        rotor.dir.join("keys/example.com"),
        rotor.signer_dir(),
        rotor.signer_dir().join("keys"),
    ] {
        for entry in fs::read_dir(&dir).into_iter().flatten() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".rotor-tmp-") {
                assert!(
                    crashed,
                    "{context}: temporary file {name} left in {}",
                    dir.display()
                );
                let mode = support::mode(&entry.path());
                if dir.ends_with("keys") || dir.ends_with("example.com") {
                    assert_eq!(mode & 0o077, 0, "{context}: {name} is mode {mode:o}");
                }
            }
        }
    }
    // No orphan private keys.
    if let Ok(entries) = fs::read_dir(rotor.dir.join("keys/example.com")) {
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.contains(".rotor-tmp-") {
                continue;
            }
            let selector = name
                .strip_suffix(".pem")
                .unwrap_or_else(|| panic!("{context}: stray file {name}"));
            assert!(
                matches!(
                    phase_of(selector),
                    Some("generated" | "published" | "propagated" | "active" | "retiring")
                ),
                "{context}: orphan key file {name} ({:?})",
                phase_of(selector)
            );
        }
    }
}

fn crash_and_resume(point: &str, retire: &'static str) {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(
        dir.path(),
        &bind,
        Setup {
            retire,
            ..Setup::default()
        },
    );
    let mut crashed = false;
    let mut step = |args: &[&str]| {
        let env: &[(&str, &str)] = if crashed {
            &[]
        } else {
            &[("ROTOR_CRASH_AT", point)]
        };
        let out = rotor.cmd_env(args, env);
        if out.status.signal().is_some() {
            assert!(!crashed, "only the armed run crashes");
            crashed = true;
            check_rules(&bind, &rotor, &format!("right after the crash at {point}"));
        } else {
            assert!(
                out.status.success(),
                "{args:?} after the crash: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            check_rules(&bind, &rotor, &format!("after a run ({point})"));
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while rotor.selector_in("active").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "first key never became active"
        );
        step(&["run"]);
    }
    let first = rotor.selector_in("active").unwrap();
    step(&["rotate", "example.com"]);
    while rotor
        .phases()
        .iter()
        .find(|(s, _)| *s == first)
        .map(|(_, p)| p.as_str())
        != Some("retired")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "old key never retired: {:?}",
            rotor.phases()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        step(&["run"]);
    }
    assert!(crashed, "the crash point {point} was never reached");
    let phases: Vec<String> = rotor.phases().into_iter().map(|(_, p)| p).collect();
    assert_eq!(phases, ["retired", "active"], "{point}");
    let records = bind.dkim_records();
    let second = rotor.selector_in("active").unwrap();
    assert_eq!(
        records.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["other", second.as_str()],
        "{point}: only the operator's record and the active one remain"
    );
    assert_eq!(
        fs::read_dir(rotor.dir.join("keys/example.com"))
            .unwrap()
            .count(),
        1,
        "{point}"
    );
    assert_eq!(
        fs::read_dir(rotor.signer_dir().join("keys"))
            .unwrap()
            .count(),
        1,
        "{point}"
    );
}

macro_rules! crash_tests {
    ($($name:ident: $point:literal, $retire:literal;)*) => {
        $(
            #[test]
            fn $name() {
                crash_and_resume($point, $retire);
            }
        )*
    };
}

crash_tests! {
    generate_key_started: "generate_key:started", "delete";
    generate_key_applied: "generate_key:applied", "delete";
    publish_started: "publish:started", "delete";
    publish_applied: "publish:applied", "delete";
    activate_started: "activate:started", "delete";
    activate_applied: "activate:applied", "delete";
    retire_started: "retire:started", "delete";
    retire_applied: "retire:applied", "delete";
    revoke_started: "revoke:started", "revoke";
    revoke_applied: "revoke:applied", "revoke";
    remove_revoked_started: "remove_revoked:started", "revoke";
    remove_revoked_applied: "remove_revoked:applied", "revoke";
    generate_key_written: "generate_key:written", "delete";
    activate_staged: "activate:staged", "delete";
    activate_switched: "activate:switched", "delete";
    retire_staged: "retire:staged", "delete";
    retire_switched: "retire:switched", "delete";
    retire_signers_done: "retire:signers_done", "delete";
    retire_dns_done: "retire:dns_done", "delete";
    revoke_signers_done: "revoke:signers_done", "revoke";
    revoke_dns_done: "revoke:dns_done", "revoke";
    revoke_staged: "revoke:staged", "revoke";
    revoke_switched: "revoke:switched", "revoke";
    // Inside atomic writes: the first run's first write is the new private key (a temporary
    // file holding it is left behind); a switch writes the signer's key file, then the
    // KeyTable, then the SigningTable.
    private_key_temp_written: "write:temp", "delete";
    private_key_renamed: "write:renamed", "delete";
    between_the_signer_tables: "write:renamed#2", "delete";
    signing_table_temp_written: "write:temp#3", "delete";
}

/// A crash in the middle of one batch of several domains' activation (staged for all, the
/// signer's tables written for all, results not yet stored) is resumed for every domain: each
/// ends active, signed with the key whose record both nameservers serve (checked by dkimpy),
/// and no domain is left on an unpublished key at any point.
#[test]
fn a_crash_inside_a_batch_of_domains_is_resumed_for_each_of_them() {
    let domains = ["a.example.com", "b.example.com", "example.com"];
    for point in ["activate:staged", "activate:switched", "activate:applied"] {
        let dir = scratch();
        let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
        let rotor = Rotor::new(dir.path(), &bind, Setup::default());
        rotor.set_domains(&domains);
        let check = |context: &str| {
            for domain in domains {
                let Some((selector, key)) = rotor.signing_for(domain) else {
                    continue;
                };
                let name = format!("{selector}._domainkey.{domain}");
                for server in bind.servers() {
                    assert_eq!(server.txt(&name).len(), 1, "{context}: {name}");
                }
                support::dkimpy_verifies_for(domain, &key, &selector, bind.secondary.port)
                    .unwrap_or_else(|err| panic!("{context}: {domain}: {err}"));
            }
        };
        let mut crashed = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let phases = rotor.phases();
            if phases.len() == domains.len() && phases.iter().all(|(_, p)| p == "active") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{point}: {phases:?}");
            let env: &[(&str, &str)] = if crashed {
                &[]
            } else {
                &[("ROTOR_CRASH_AT", point)]
            };
            let out = rotor.cmd_env(&["run"], env);
            if out.status.signal().is_some() {
                assert!(!crashed, "only the armed run crashes");
                crashed = true;
                check(&format!("right after the crash at {point}"));
            } else {
                assert!(
                    out.status.success(),
                    "{point}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                check(&format!("after a run ({point})"));
            }
            // The propagation gate (min_wait 1s) opens with the clock.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(crashed, "the crash point {point} was never reached");
        // Every domain signs (the check above proved each with dkimpy), with exactly one key
        // in rotor's store each, and each domain's key directory holds just that key.
        for domain in domains {
            assert!(
                rotor.signing_for(domain).is_some(),
                "{point}: {domain} has no SigningTable row"
            );
            let keys = fs::read_dir(rotor.dir.join("keys").join(domain)).unwrap();
            assert_eq!(keys.count(), 1, "{point}: {domain}");
        }
    }
}

/// The `(domain, selector)` of every DKIM record the server on `port` serves in example.com
/// (one zone transfer).
fn dkim_names(port: u16) -> BTreeSet<(String, String)> {
    let out = std::process::Command::new("dig")
        .args(["+nocmd", "+nostats", "+nocomments", "@127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["AXFR", "example.com"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.split_whitespace().nth(3) == Some("TXT"))
        .filter_map(|line| {
            let name = line.split_whitespace().next()?;
            let (selector, domain) = name.strip_suffix('.')?.split_once("._domainkey.")?;
            Some((domain.to_string(), selector.to_string()))
        })
        .collect()
}

/// A crash between two transactions of one commit (a commit of more domains than one
/// transaction holds, 256, is written as several) is resumed for every domain, whichever commit
/// of the first or the second run it cuts: every domain ends active, and at no point does a
/// signer use a key whose record either nameserver lacks.
#[test]
fn a_crash_between_the_transactions_of_one_large_commit_is_resumed_for_every_domain() {
    let names: Vec<String> = (0..300).map(|i| format!("d{i:03}.example.com")).collect();
    let domains: Vec<&str> = names.iter().map(String::as_str).collect();
    // The first run's large commits: the selectors reserved, the keys' intents and results,
    // the records'; then the propagation checks' (once every record is published), and the
    // switch's (once every key is propagated).
    for (nth, armed_in) in [
        (1, None),
        (3, None),
        (5, None),
        (1, Some("published")),
        (2, Some("published")),
        (3, Some("published")),
    ] {
        let point = format!("commit:part#{nth}");
        let context = match armed_in {
            None => format!("{point} in the first run"),
            Some(phase) => format!("{point} once every key is {phase}"),
        };
        let dir = scratch();
        // A secondary that transfers only when told, once every record is on the primary: then
        // every domain's record turns visible at once, and each later commit holds all 300.
        let bind = Bind::start(&dir.path().join("bind"), Secondary::Lagging);
        let rotor = Rotor::new(dir.path(), &bind, Setup::default());
        rotor.set_domains(&domains);
        let check = |when: &str| {
            let served: Vec<BTreeSet<(String, String)>> =
                bind.servers().iter().map(|s| dkim_names(s.port)).collect();
            for domain in &domains {
                if let Some((selector, _)) = rotor.signing_for(domain) {
                    let name = (domain.to_string(), selector);
                    for set in &served {
                        assert!(
                            set.contains(&name),
                            "{context}, {when}: {name:?} not served"
                        );
                    }
                }
            }
        };
        let mut crashed = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
        loop {
            let phases = rotor.phases();
            if phases.len() == domains.len() && phases.iter().all(|(_, p)| p == "active") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{context}: {phases:?}"
            );
            let armed = !crashed
                && armed_in.is_none_or(|phase| {
                    phases.len() == domains.len() && phases.iter().all(|(_, p)| p == phase)
                });
            let env: Vec<(&str, &str)> = if armed {
                vec![("ROTOR_CRASH_AT", point.as_str())]
            } else {
                Vec::new()
            };
            if phases.iter().any(|(_, p)| p == "published") {
                let primary = dkim_names(bind.primary.port);
                bind.secondary.retransfer();
                support::wait_for(
                    &format!("{context}: the secondary's transfer"),
                    std::time::Duration::from_secs(30),
                    || dkim_names(bind.secondary.port) == primary,
                );
            }
            let out = rotor.cmd_env(&["run"], &env);
            if out.status.signal().is_some() {
                assert!(armed, "{context}: only the armed run crashes");
                crashed = true;
                check("right after the crash");
            } else {
                assert!(
                    out.status.success(),
                    "{context}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                check("after a run");
            }
            // The propagation gate (min_wait 1s) opens with the clock.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(crashed, "{context}: the crash point was never reached");
        // One key each, whose record DNS serves (dkimpy, for the first and last domains and
        // one on each side of the transactions' boundary).
        for domain in &domains {
            let keys = fs::read_dir(rotor.dir.join("keys").join(domain)).unwrap();
            assert_eq!(keys.count(), 1, "{context}: {domain}");
        }
        for domain in [
            "d000.example.com",
            "d255.example.com",
            "d256.example.com",
            "d299.example.com",
        ] {
            let (selector, key) = rotor.signing_for(domain).expect("a SigningTable row");
            support::dkimpy_verifies_for(domain, &key, &selector, bind.secondary.port)
                .unwrap_or_else(|err| panic!("{context}: {domain}: {err}"));
        }
    }
}
