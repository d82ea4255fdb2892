//! Bad input gets a clear error that names the file, line, column and field, the documented
//! exit code, and nothing half-done.

mod support;

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::{Bind, Rotor, Secondary, Setup, free_port, scratch, write_private};

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

/// [`edited_error`] with one edit, asserting the message (after `rotor: FILE:`) starts with `expected`.
fn expect_error(from: &str, to: &str, expected: &str) -> String {
    refused(&[(from, to)], |_| {}, expected)
}

/// [`edited_error`], asserting the message (after `rotor: FILE:`) starts with `expected`.
fn refused(edits: &[(&str, &str)], prepare: impl FnOnce(&Path), expected: &str) -> String {
    let err = edited_error(edits, prepare);
    assert!(
        err.starts_with(expected),
        "expected {expected:?}, got {err:?}"
    );
    err
}

/// Writes the config with each `from` replaced by its `to` (`{dir}` in it is the scratch
/// directory), runs `prepare` on the directory, then `rotor run`, and returns stderr after
/// checking exit code 2 and that nothing was created.
fn edited_error(edits: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> String {
    let dir = scratch();
    write_private(&dir.path().join("tsig.key"), TSIG);
    let mut text = config(dir.path());
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replacen(
            from,
            &to.replace("{dir}", &dir.path().display().to_string()),
            1,
        );
    }
    prepare(dir.path());
    let path = dir.path().join("rotor.yaml");
    fs::write(&path, text).unwrap();
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
    assert!(!stderr.contains("panicked"), "{stderr}");
    let prefix = format!("rotor: {}:", path.display());
    stderr
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string()
}

/// The edit that makes the provider Cloudflare's API, its token in the file `tsig.key` (0600).
const CLOUDFLARE: (&str, &str) = (
    "type: rfc2136\n    server: 127.0.0.1:5399\n    tsig_key_file:",
    "type: cloudflare\n    api_token_file:",
);

/// Adds `lines` to `defaults:` (after line 4).
fn defaults(lines: &str) -> (&'static str, String) {
    ("keys: [rsa-2048]\n", format!("keys: [rsa-2048]\n{lines}"))
}

/// Checks each `(lines added to defaults, expected)`.
fn refused_defaults(cases: &[(&str, &str)]) {
    for (lines, expected) in cases {
        let (from, to) = defaults(lines);
        refused(&[(from, &to)], |_| {}, expected);
    }
}

#[test]
fn a_ttl_out_of_range_or_refused_by_the_provider() {
    refused_defaults(&[(
        "  ttl: 0\n",
        "5:8: defaults.ttl (for example.com): TTL 0 is out of range: use 1 to 604800",
    )]);
    expect_error(
        "signers: [mx1]",
        "signers: [mx1]\n    ttl: 604801",
        "21:10: domains[0].ttl: TTL 604801 is out of range",
    );
    let (from, to) = defaults("  ttl: 10\n");
    refused(
        &[(from, &to), CLOUDFLARE],
        |_| {},
        "5:8: defaults.ttl (for example.com): TTL 10 is refused by Cloudflare, which takes 1 (automatic) or 30 to 86400",
    );
}

#[test]
fn a_grace_shorter_than_the_ttl() {
    refused_defaults(&[
        (
            "  ttl: 3600\n  grace: 10m\n",
            "6:10: defaults.grace (for example.com): 10m is shorter than the TTL (3600s)",
        ),
        (
            "  grace: 0s\n",
            "5:10: defaults.grace (for example.com): 0s is shorter than the TTL (300s)",
        ),
    ]);
}

#[test]
fn zero_intervals_and_a_timeout_before_min_wait() {
    refused_defaults(&[
        (
            "  rotate_every: 0s\n",
            "5:17: defaults.rotate_every (for example.com): 0s would start a rotation on every pass",
        ),
        (
            "  propagation:\n    poll_every: 0s\n",
            "6:17: defaults.propagation.poll_every (for example.com): 0s would ask",
        ),
        (
            "  propagation: {min_wait: 2h, timeout: 2h}\n",
            "5:40: defaults.propagation.timeout (for example.com): 2h is not longer than min_wait (2h)",
        ),
        (
            "  retire: revoke\n  revoke_for: 0s\n",
            "6:15: defaults.revoke_for (for example.com): 0s with `retire: revoke`",
        ),
        (
            "  grace: 200y\n",
            "5:10: defaults.grace: invalid duration \"200y\": at most 100 years",
        ),
    ]);
    expect_error(
        "server: 127.0.0.1:5399",
        "server: 127.0.0.1:5399\n    timeout: 0s",
        "9:14: providers.corp-bind.timeout: 0s gives the server no time",
    );
}

#[test]
fn no_server_to_check_propagation_with() {
    refused_defaults(&[(
        "  propagation: {authoritative: none, resolvers: []}\n",
        "5:32: defaults.propagation.authoritative (for example.com): with no authoritative servers and no resolvers",
    )]);
    expect_error(
        "signers: [mx1]",
        "signers: [mx1]\n    propagation:\n      authoritative: []",
        "22:22: domains[0].propagation.authoritative: with no authoritative servers",
    );
}

#[test]
fn selectors_too_long_for_dns() {
    let sixteen = "{yyyy}".repeat(16);
    let (from, to) = defaults(&format!("  selector: \"{sixteen}\"\n"));
    refused(
        &[(from, &to)],
        |_| {},
        "5:13: defaults.selector: selector template",
    );
    // 61 characters: with the -NN suffix rotor appends when a name is taken, 64.
    let fifteen = "{yyyy}".repeat(15);
    let (from, to) = defaults(&format!("  selector: \"s{fifteen}\"\n"));
    let err = refused(
        &[(from, &to)],
        |_| {},
        "5:13: defaults.selector (for example.com): the template can render 64 characters",
    );
    assert!(err.contains(&format!("s{}-99", "9999".repeat(15))), "{err}");
    // The record name: selector, `._domainkey.` and a 246-character domain.
    let long = format!(
        "{}.{}.{}.{}.com",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(50)
    );
    let name = format!("name: {long}");
    expect_error(
        "name: example.com",
        &name,
        "18:5: domains[0].selector: the record name can reach 274 characters",
    );
    refused(
        &[
            ("name: example.com", &name),
            ("signers: [mx1]", "signers: [mx1]\n    selectors: [s1, s2]"),
        ],
        |_| {},
        "21:16: domains[0].selectors[0]: the record name can reach 260 characters",
    );
}

#[test]
fn secrets_only_over_https_or_to_this_machine() {
    let err = refused(
        &[
            CLOUDFLARE,
            (
                "tsig.key\n",
                "tsig.key\n    api_url: http://api.example.com/v4\n",
            ),
        ],
        |_| {},
        "9:14: providers.corp-bind.api_url: plain http:// would send it unencrypted",
    );
    assert!(err.contains("127.0.0.1, ::1, localhost"), "{err}");
    let err = expect_error(
        "domains:",
        "notify:\n  webhook: http://hooks.example.com/T000/SECRET\ndomains:",
        "18:12: notify.webhook: plain http:// would send it unencrypted",
    );
    assert!(
        !err.contains("SECRET") && !err.contains("hooks.example.com"),
        "{err}"
    );
}

#[test]
fn secret_files_open_to_other_users() {
    let open = |dir: &Path| {
        fs::set_permissions(dir.join("tsig.key"), fs::Permissions::from_mode(0o644)).unwrap();
    };
    let err = refused(
        &[],
        open,
        "9:5: providers.corp-bind.tsig_key_file: the TSIG key file",
    );
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600 /"),
        "{err}"
    );
    let err = refused(
        &[CLOUDFLARE],
        open,
        "8:21: providers.corp-bind.api_token_file: the API token file",
    );
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600 /"),
        "{err}"
    );
}

#[test]
fn signers_sharing_a_directory_or_table() {
    let exim = |table: &str, key_dir: &str| {
        format!("signers:\n  mx0:\n    type: exim\n    table: {table}\n    key_dir: {key_dir}\n")
    };
    let shared_dir = exim("{dir}/exim-table", "{dir}/dkimkeys");
    refused(
        &[("signers:\n", &shared_dir)],
        |_| {},
        "19:14: signers.mx1.key_dir: ",
    )
    .contains("is also signers.mx0.key_dir")
    .then_some(())
    .expect("names both signers");
    let shared_table = exim("{dir}/KeyTable", "{dir}/exim-keys");
    let err = refused(
        &[("signers:\n", &shared_table)],
        |_| {},
        "17:16: signers.mx1.key_table: ",
    );
    assert!(err.contains("is also signers.mx0.table"), "{err}");
    let err = expect_error("/keys\n", "/state\n", "2:10: key_dir: ");
    assert!(err.contains("is also state_dir"), "{err}");
    let err = expect_error("/dkimkeys\n", "/keys\n", "15:14: signers.mx1.key_dir: ");
    assert!(err.contains("is also key_dir"), "{err}");
}

#[test]
fn other_values_that_would_fail_later() {
    expect_error(
        "signers: [mx1]",
        "signers: [mx1, mx1]",
        "20:20: domains[0].signers[1]: signer \"mx1\" is listed twice",
    );
    let err = expect_error("key_dir: /", "key_dir: keys/", "2:10: key_dir: keys/");
    assert!(err.contains("is relative"), "{err}");
    expect_error(
        "reload: \"true\"",
        "reload: \" \"",
        "16:13: signers.mx1.reload: is empty",
    );
    expect_error(
        "server: 127.0.0.1:5399",
        "server: 127.0.0.1:0",
        "8:5: providers.corp-bind.server: invalid server address \"127.0.0.1:0\": port 0",
    );
    refused_defaults(&[
        (
            "  selectors: []\n",
            "5:14: defaults.selectors: an empty ring",
        ),
        (
            "  selector: a{yyyy}\n  selectors: [s1, s2]\n",
            "6:14: defaults.selectors: set `selector:` (a template) or `selectors:` (a ring), not both",
        ),
        (
            "  selector: \"{alg}-\"\n",
            "5:13: defaults.selector: invalid selector template \"{alg}-\"",
        ),
    ]);
    expect_error(
        "domains:",
        "notify:\n  command: \"\"\ndomains:",
        "18:12: notify.command: is empty",
    );
    expect_error(
        "reload: \"true\"",
        "reload: \"true\"\n    user: no-such-user-rotor",
        "17:11: signers.mx1.user: no user \"no-such-user-rotor\" on this machine",
    );
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
    write_private(&dir.path().join("tsig.key"), TSIG);
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
    write_private(&dir.path().join("tsig.key"), TSIG);
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
    write_private(&dir.path().join("tsig.key"), TSIG);
    let path = dir.path().join("rotor.yaml");
    let port = free_port();
    fs::write(
        &path,
        config(dir.path()).replace("127.0.0.1:5399", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let out = rotor(&path, &["run"]);
    // A server that does not answer is transient: exit 75, the next pass retries it.
    assert_eq!(out.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("corp-bind: 127.0.0.1:{port} did not answer")),
        "{stderr}"
    );
    assert!(stderr.contains("(transient)"), "{stderr}");
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
    write_private(&wrong, TSIG);
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

#[test]
fn an_empty_aws_variable_is_unset_and_nothing_panics() {
    let dir = scratch();
    let path = dir.path().join("rotor.yaml");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let text = config(dir.path()).replace(
        "type: rfc2136\n    server: 127.0.0.1:5399\n    tsig_key_file: ",
        "type: route53\n    # ",
    );
    fs::write(&path, text).unwrap();
    // As a systemd EnvironmentFile line `AWS_ENDPOINT_URL_ROUTE_53=` sets it.
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .envs([
            ("AWS_ENDPOINT_URL_ROUTE_53", ""),
            ("AWS_ENDPOINT_URL", closed.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    // The empty variable is unset: the general endpoint is used, and answers nothing.
    assert!(
        stdout.contains("FAIL  example.com: provider corp-bind") && stdout.contains("127.0.0.1"),
        "{stdout}"
    );
}

#[test]
fn weak_keys_are_warned_about_once_per_run() {
    let dir = scratch();
    write_private(&dir.path().join("tsig.key"), TSIG);
    let path = dir.path().join("rotor.yaml");
    let mut text = config(dir.path()).replace("keys: [rsa-2048]", "keys: [rsa-1024]");
    for i in 0..5 {
        text.push_str(&format!(
            "  - {{name: d{i}.example.com, provider: corp-bind, signers: [mx1]}}\n"
        ));
    }
    fs::write(&path, text).unwrap();
    let out = rotor(&path, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("rsa-1024 is weak").count(), 1, "{stderr}");
    assert!(
        stderr.contains("6 domain(s) use it: example.com, d0.example.com, d1.example.com, …"),
        "{stderr}"
    );
}
