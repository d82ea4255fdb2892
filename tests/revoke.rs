//! Emergency revocation end to end on the test BIND: a leaked key is replaced at once (skipping
//! `min_wait` only with `--now`) and revoked, with an empty `p=`, without waiting for its grace
//! window; with `--force`, it is revoked before any replacement can be active.

mod support;

use std::fs;

use support::{Bind, Rotor, Secondary, Setup, scratch, wait_for};

const REVOKED: &str = "v=DKIM1; k=rsa; h=sha256; p=";

/// A rotor whose example.com signs with an active key, and whose gates are then set long:
/// `min_wait` and `grace` of one hour (and a `timeout` after min_wait), so only the emergency
/// path can move within the test.
fn active_with_long_gates(dir: &std::path::Path, bind: &Bind) -> (Rotor, String) {
    let rotor = Rotor::new(dir, bind, Setup::default());
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let config = fs::read_to_string(&rotor.config).unwrap();
    let config = config
        .replace("min_wait: 1s", "min_wait: 1h")
        .replace("timeout: 5m", "timeout: 2h")
        .replace("grace: 2s", "grace: 1h");
    fs::write(&rotor.config, config).unwrap();
    let active = rotor.selector_in("active").unwrap();
    (rotor, active)
}

/// A bind with example.com signing (see [`active_with_long_gates`]), its rotor and active key.
fn leaked_key(dir: &std::path::Path) -> (Bind, Rotor, String) {
    let bind = Bind::start(&dir.join("bind"), Secondary::Notified);
    let (rotor, leaked) = active_with_long_gates(dir, &bind);
    (bind, rotor, leaked)
}

/// `rotor revoke example.com SELECTOR --reason REASON FLAG`, which must succeed; its stderr.
fn revoke(rotor: &Rotor, selector: &str, reason: &str, flag: &str) -> String {
    let out = rotor.cmd(&["revoke", "example.com", selector, "--reason", reason, flag]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    stderr
}

fn history(rotor: &Rotor) -> String {
    rotor.ok(&["history", "example.com"])
}

#[test]
fn a_leaked_key_is_replaced_and_revoked_without_grace() {
    let dir = scratch();
    let (bind, rotor, leaked) = leaked_key(dir.path());

    let stderr = revoke(
        &rotor,
        &leaked,
        "private key found in a public backup",
        "--now",
    );
    assert!(stderr.contains("skips min_wait (--now)"));

    // The timer's later passes finish: the replacement activates despite min_wait 1h, and the
    // leaked key is revoked at once despite grace 1h.
    rotor.run_until("the leaked key revoked", |r| {
        r.phases()
            .iter()
            .any(|(s, p)| *s == leaked && p == "revoked")
    });
    let replacement = rotor.selector_in("active").unwrap();
    assert_ne!(replacement, leaked);
    assert_eq!(
        rotor.signing_selector().as_deref(),
        Some(replacement.as_str())
    );
    for server in bind.servers() {
        wait_for(
            "the revoked record on every server",
            std::time::Duration::from_secs(10),
            || server.txt(&format!("{leaked}._domainkey.example.com")) == [REVOKED],
        );
    }
    let history = history(&rotor);
    assert!(
        history.contains(&format!(
            "{leaked}  active  reported compromised: private key found in a public backup; the replacement skips min_wait (--now)"
        )),
        "{history}"
    );
    assert!(
        history.contains(&format!("{leaked}  revoked  ")),
        "{history}"
    );
}

#[test]
fn with_force_the_key_is_revoked_before_a_replacement_is_active() {
    let dir = scratch();
    let (bind, rotor, leaked) = leaked_key(dir.path());

    let stderr = revoke(&rotor, &leaked, "stolen laptop", "--force");
    assert!(
        stderr.contains(
            "mail of example.com is not signed with a rsa-2048 key until its replacement is active"
        ),
        "{stderr}"
    );
    // In that one command: revoked, out of the signer, a replacement published but held by
    // min_wait (no --now).
    let phases = rotor.phases();
    assert!(
        phases.contains(&(leaked.clone(), "revoked".into())),
        "{phases:?}"
    );
    assert_eq!(rotor.selector_in("active"), None);
    assert!(rotor.selector_in("published").is_some(), "{phases:?}");
    assert_eq!(
        rotor.signing_selector(),
        None,
        "nothing signs example.com now"
    );
    assert_eq!(
        bind.primary
            .txt(&format!("{leaked}._domainkey.example.com")),
        [REVOKED]
    );

    // Revoking it again is refused: it is revoked already.
    let again = rotor.cmd(&["revoke", "example.com", &leaked, "--reason", "x"]);
    assert_eq!(again.status.code(), Some(2));
}

/// Found from outside: a new key whose switch failed (its activation pending), once the signer
/// works again and the key is reported leaked, became active and the good key retiring. A leaked
/// key must never sign: the good key keeps signing and the leaked one is revoked.
#[test]
fn a_leaked_key_whose_switch_failed_is_never_activated() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let flag = rotor.signer_dir().join("reload-fails");
    let config = fs::read_to_string(&rotor.config).unwrap().replace(
        "reload: \"echo",
        &format!("reload: \"test ! -e {} && echo", flag.display()),
    );
    fs::write(&rotor.config, config).unwrap();
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let good = rotor.selector_in("active").unwrap();

    fs::write(&flag, "").unwrap();
    rotor.ok(&["rotate", "example.com"]);
    wait_for(
        "the new key propagated, its switch failing",
        std::time::Duration::from_secs(60),
        || {
            let _ = rotor.cmd(&["run"]);
            rotor.selector_in("propagated").is_some()
                && rotor.status().iter().any(|row| !row["error"].is_null())
        },
    );
    let leaked = rotor.selector_in("propagated").unwrap();
    fs::remove_file(&flag).unwrap();

    revoke(&rotor, &leaked, "key file copied to a laptop", "--now");
    let phases = rotor.phases();
    assert!(
        phases.contains(&(good.clone(), "active".into())),
        "{phases:?}"
    );
    assert!(
        phases.contains(&(leaked.clone(), "revoked".into())),
        "{phases:?}"
    );
    assert_eq!(rotor.signing_selector().as_deref(), Some(good.as_str()));
    assert_eq!(rotor.signer_key_file(&leaked), None, "no KeyTable row left");
    assert_eq!(
        bind.primary
            .txt(&format!("{leaked}._domainkey.example.com")),
        [REVOKED]
    );
}
