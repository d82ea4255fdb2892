//! Bad input gets a clear error that names the file, line, column and field, the documented
//! exit code, and nothing half-done.

mod support;

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Output};

use support::{Bind, Rotor, Secondary, Setup, free_port, scratch};

const TSIG: &str = "key \"rotor-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n";

fn config(dir: &Path) -> String {
    format!(
        "state_dir: {dir}/state
key_dir: {dir}/keys
defaults:
  keys: [rsa-2048]
providers:
  corp-bind:
    type: rfc2136
    server: 127.0.0.1:5399
    tsig_key_file: {dir}/tsig.key
signers:
  mx1:
    type: opendkim
    key_table: {dir}/KeyTable
    signing_table: {dir}/SigningTable
    key_dir: {dir}/dkimkeys
    reload: \"true\"
domains:
  - name: example.com
    provider: corp-bind
    signers: [mx1]
",
        dir = dir.display()
    )
}

fn rotor(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// [`config_error`], asserting the message (after `rotor: FILE:`) starts with `expected`.
fn expect_error(from: &str, to: &str, expected: &str) -> String {
    let err = config_error(from, to);
    assert!(
        err.starts_with(expected),
        "expected {expected:?}, got {err:?}"
    );
    err
}

/// Writes the config with `from` replaced by `to`, runs `rotor run` and returns stderr after
/// checking exit code 2 and that nothing was created.
fn config_error(from: &str, to: &str) -> String {
    let dir = scratch();
    fs::write(dir.path().join("tsig.key"), TSIG).unwrap();
    let text = config(dir.path());
    assert!(text.contains(from), "{from}");
    let path = dir.path().join("rotor.yaml");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let out = rotor(&path, &["run"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(
        !dir.path().join("state").exists() && !dir.path().join("keys").exists(),
        "nothing is created"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let prefix = format!("rotor: {}:", path.display());
    stderr
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string()
}

#[test]
fn malformed_yaml() {
    expect_error(
        "keys: [rsa-2048]",
        "keys: [rsa-2048",
        "5:10: did not find expected ',' or ']'",
    );
}

#[test]
fn unknown_keys() {
    let colour = "\n    colour: blue";
    expect_error(
        "signers: [mx1]",
        &format!("signers: [mx1]{colour}"),
        "21:5: domains[0]: unknown field `colour`",
    );
    expect_error(
        "reload: \"true\"",
        &format!("reload: \"true\"{colour}"),
        "17:5: signers.mx1.colour: unknown field `colour`",
    );
    expect_error("state_dir:", "stat_dir:", "1:1: unknown field `stat_dir`");
}

#[test]
fn unknown_provider_and_signer_references() {
    expect_error(
        "provider: corp-bind",
        "provider: corp-bnd",
        "19:15: domains[0].provider: provider \"corp-bnd\" is not declared under `providers:` (declared: corp-bind)",
    );
    expect_error(
        "signers: [mx1]",
        "signers: [mx2]",
        "20:15: domains[0].signers[0]: signer \"mx2\" is not declared",
    );
}

#[test]
fn invalid_domain_name() {
    expect_error(
        "name: example.com",
        "name: exa_mple.com",
        "18:11: domains[0].name: invalid domain name \"exa_mple.com\"",
    );
}

#[test]
fn weak_rsa_and_lone_ed25519() {
    let err = expect_error(
        "keys: [rsa-2048]",
        "keys: [rsa-512]",
        "4:10: defaults.keys[0]: unsupported key type \"rsa-512\"",
    );
    assert!(err.contains("RFC 8301"), "{err}");
    expect_error(
        "keys: [rsa-2048]",
        "keys: [ed25519]",
        "4:9: defaults.keys: ed25519 needs an RSA key beside it",
    );
    expect_error(
        "keys: [rsa-2048]",
        "keys: [rsa-2048, ed25519]",
        "18:5: domains[0].keys: ed25519 needs a signer that signs twice",
    );
}

#[test]
fn missing_tsig_key_file_and_reload() {
    let err = expect_error(
        "/tsig.key",
        "/missing.key",
        "9:5: providers.corp-bind.tsig_key_file: cannot read TSIG key file",
    );
    assert!(err.contains("missing.key"), "{err}");
    expect_error(
        "    reload: \"true\"\n",
        "",
        "11:3: signers.mx1: set `reload:`",
    );
}

#[test]
fn missing_config_and_bad_usage() {
    let out = rotor(Path::new("/nonexistent/rotor.yaml"), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/rotor.yaml: cannot read the config")
    );
    let dir = scratch();
    fs::write(dir.path().join("tsig.key"), TSIG).unwrap();
    let path = dir.path().join("rotor.yaml");
    fs::write(&path, config(dir.path())).unwrap();
    let out = rotor(&path, &["rotate", "example.org"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("example.org is not a domain in"));
    assert_eq!(rotor(&path, &["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_held_lock_exits_75_and_does_nothing() {
    let dir = scratch();
    fs::write(dir.path().join("tsig.key"), TSIG).unwrap();
    let path = dir.path().join("rotor.yaml");
    fs::write(&path, config(dir.path())).unwrap();
    fs::create_dir_all(dir.path().join("state")).unwrap();
    let lock = File::create(dir.path().join("state/rotor.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = rotor(&path, &["run"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("another rotor is running"));
    assert!(!dir.path().join("keys").exists() && !dir.path().join("state/store").exists());
}

#[test]
fn an_unreachable_server_is_an_error_that_loses_nothing() {
    let dir = scratch();
    fs::write(dir.path().join("tsig.key"), TSIG).unwrap();
    let path = dir.path().join("rotor.yaml");
    let port = free_port();
    fs::write(
        &path,
        config(dir.path()).replace("127.0.0.1:5399", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let out = rotor(&path, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("corp-bind: 127.0.0.1:{port} did not answer")),
        "{stderr}"
    );
    let out = rotor(&path, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  example.com: provider corp-bind"));
}

#[test]
fn a_wrong_tsig_secret_is_named_and_the_rotation_resumes_once_fixed() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let good = fs::read_to_string(&bind.tsig_file).unwrap();
    let wrong = dir.path().join("wrong.key");
    fs::write(&wrong, TSIG).unwrap();
    let config = fs::read_to_string(&rotor.config).unwrap();
    fs::write(
        &rotor.config,
        config.replace(
            &bind.tsig_file.display().to_string(),
            &wrong.display().to_string(),
        ),
    )
    .unwrap();

    let out = rotor.cmd(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TSIG authentication failed"), "{stderr}");
    let check = rotor.cmd(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stdout).contains("TSIG authentication failed"));
    // The key waits in `generated` with the error; nothing was published.
    let status = rotor.status();
    assert_eq!(status[0]["phase"], "generated");
    assert!(
        status[0]["error"].as_str().unwrap().contains("TSIG"),
        "{:?}",
        status[0]
    );
    let selector = status[0]["selector"].as_str().unwrap().to_string();
    assert_eq!(bind.dkim_records().len(), 1, "only the operator's record");

    // Fixed: the same key goes on.
    fs::write(&wrong, good).unwrap();
    assert!(rotor.cmd(&["check"]).status.success());
    rotor.run_until("active", |r| r.selector_in("active").is_some());
    assert_eq!(rotor.selector_in("active"), Some(selector));
    assert!(rotor.status()[0]["error"].is_null());
}

#[test]
fn a_damaged_store_is_refused_and_its_backup_restores_it() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    rotor.run_until("active", |r| r.selector_in("active").is_some());
    let before = rotor.phases();

    let store = dir.path().join("state/store");
    let db = store.join("db");
    let mut bytes = fs::read(&db).unwrap();
    for byte in bytes.iter_mut().skip(100).step_by(37) {
        *byte ^= 0xff;
    }
    fs::write(&db, &bytes).unwrap();
    for args in [&["run"][..], &["status"][..]] {
        let out = rotor.cmd(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is damaged") && stderr.contains("store.backup"),
            "{stderr}"
        );
    }
    // What the message says to do brings everything back.
    fs::rename(&store, dir.path().join("state/store.damaged")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(dir.path().join("state/store.backup"))
        .arg(&store)
        .status()
        .unwrap();
    assert!(copied.success());
    assert_eq!(rotor.phases(), before);
    rotor.ok(&["run"]);
}
