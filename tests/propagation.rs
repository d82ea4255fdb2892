//! Propagation gates activation: a secondary that lags (no NOTIFY, one-hour refresh) holds the
//! signer switch back until it has the record; one that never gets it fails the rotation after
//! `propagation.timeout`, and the current key keeps signing.

mod support;

use std::fs;
use std::time::Duration;

use support::{Bind, Rotor, Secondary, Setup, scratch, wait_for};

fn row(rotor: &Rotor, selector: &str) -> serde_json::Value {
    rotor
        .status()
        .into_iter()
        .find(|row| row["selector"] == selector)
        .unwrap()
}

/// Runs `rotor run` until the key at `selector` has been found missing on the secondary in
/// three successive checks, asserting each time that nothing was activated.
fn held_back(rotor: &Rotor, bind: &Bind, selector: &str, signing_before: Option<String>) {
    let secondary = format!("127.0.0.1:{}", bind.secondary.port);
    let mut checks = Vec::new();
    rotor.run_until("three checks without the secondary", |r| {
        let row = row(r, selector);
        assert_eq!(row["phase"], "published", "{row}");
        assert_eq!(
            r.signing_selector(),
            signing_before,
            "the signer must not switch"
        );
        if let Some(at) = row["checked_at"].as_str() {
            let servers = row["servers"].as_array().unwrap();
            let lagging = servers
                .iter()
                .find(|s| s["server"] == secondary.as_str())
                .unwrap();
            assert_eq!(lagging["ok"], false, "{servers:?}");
            assert!(
                servers.iter().any(|s| s["ok"] == true),
                "the primary has it: {servers:?}"
            );
            let waiting = row["waiting_for"].as_str().unwrap();
            assert!(
                waiting.contains(&secondary) || waiting.starts_with("next run"),
                "{waiting}"
            );
            if checks.last().map(String::as_str) != Some(at) {
                checks.push(at.to_string());
            }
        }
        checks.len() >= 3
    });
    let name = format!("{selector}._domainkey.example.com");
    assert_eq!(bind.primary.txt(&name).len(), 1);
    assert!(
        bind.secondary.txt(&name).is_empty(),
        "the secondary really lags"
    );
}

#[test]
fn a_lagging_secondary_holds_activation_back() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Lagging);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    rotor.ok(&["run"]);
    let selector = rotor.selector_in("published").unwrap();
    held_back(&rotor, &bind, &selector, None);

    bind.secondary.retransfer();
    rotor.run_until("activation once the secondary has the record", |r| {
        r.selector_in("active").is_some()
    });
    assert_eq!(rotor.signing_selector(), Some(selector.clone()));
    let servers = row(&rotor, &selector)["servers"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        servers
            .iter()
            .all(|s| s["ok"] == true && s["detail"] == "record matches"),
        "{servers:?}"
    );
}

#[test]
fn a_rotation_that_never_propagates_fails_and_the_old_key_keeps_signing() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Lagging);
    let rotor = Rotor::new(
        dir.path(),
        &bind,
        Setup {
            timeout: "8s",
            ..Setup::default()
        },
    );
    rotor.ok(&["run"]);
    let first = rotor.selector_in("published").unwrap();
    wait_for(
        "the first key on the secondary",
        Duration::from_secs(20),
        || {
            bind.secondary.retransfer();
            !bind
                .secondary
                .txt(&format!("{first}._domainkey.example.com"))
                .is_empty()
        },
    );
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());

    rotor.ok(&["rotate", "example.com"]);
    let second = rotor.selector_in("published").unwrap();
    held_back(&rotor, &bind, &second, Some(first.clone()));
    // Past the timeout, the pass that gives up says so with exit code 1.
    let mut failed_run = None;
    wait_for("the rotation to fail", Duration::from_secs(30), || {
        let out = rotor.cmd(&["run"]);
        if out.status.code() == Some(1) {
            failed_run = Some(String::from_utf8_lossy(&out.stderr).into_owned());
        } else {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        failed_run.is_some()
    });
    let stderr = failed_run.unwrap();
    assert!(
        stderr.contains("rotation failed") && stderr.contains(&second),
        "{stderr}"
    );

    // The old key keeps signing, the new record and key are gone, status shows why.
    assert_eq!(rotor.signing_selector(), Some(first.clone()));
    assert_eq!(rotor.selector_in("active"), Some(first.clone()));
    assert!(
        bind.primary
            .txt(&format!("{second}._domainkey.example.com"))
            .is_empty()
    );
    assert!(
        bind.primary
            .txt(&format!("{first}._domainkey.example.com"))
            .len()
            == 1
    );
    assert!(
        !rotor
            .dir
            .join(format!("keys/example.com/{second}.pem"))
            .exists()
    );
    let status = rotor.cmd(&["status", "--json"]);
    assert_eq!(
        status.status.code(),
        Some(2),
        "status reports the failed key as critical"
    );
    let check = rotor.cmd(&["status", "--check"]);
    assert_eq!(check.status.code(), Some(2));
    let line = String::from_utf8_lossy(&check.stdout);
    assert!(
        line.starts_with(&format!(
            "ROTOR CRITICAL - example.com {second} failed: not visible everywhere"
        )),
        "{line}"
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    let failed = rows
        .iter()
        .find(|r| r["selector"] == second.as_str())
        .unwrap();
    assert_eq!(failed["phase"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("propagation.timeout"),
        "{failed}"
    );
    assert!(
        failed["waiting_for"].as_str().unwrap().contains("retry"),
        "{failed}"
    );
    let signing = fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap();
    assert!(!signing.contains(&second), "{signing}");
}
