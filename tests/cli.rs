//! The commands that need no rotation: `init`, `completions` and `providers`, and `--help` on
//! every command.

mod support;

use std::fs;
use std::process::Command;

use support::{mode, scratch};

fn rotor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .env_remove("ROTOR_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn init_writes_the_commented_example_once() {
    let dir = scratch();
    let path = dir.path().join("etc/rotor.yaml");
    let config = path.display().to_string();
    let out = rotor(&["--config", &config, "init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, include_str!("../examples/rotor.yaml"));
    assert_eq!(mode(&path), 0o640);
    // Never over an existing config.
    fs::write(&path, "# mine\n").unwrap();
    let again = rotor(&["--config", &config, "init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert_eq!(fs::read_to_string(&path).unwrap(), "# mine\n");
}

#[test]
fn completions_and_help_for_every_command() {
    let bash = rotor(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_rotor()") && script.contains("revoke"),
        "{script}"
    );
    for command in [
        "run",
        "daemon",
        "status",
        "rotate",
        "plan",
        "check",
        "revoke",
        "history",
        "init",
        "providers",
        "completions",
    ] {
        let help = rotor(&[command, "--help"]);
        assert!(help.status.success(), "{command} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: rotor"));
    }
}

/// The README's provider table is `rotor providers --markdown`, so it cannot drift from the
/// registry; `--json` says the same, one object per provider.
#[test]
fn the_readme_provider_table_is_the_catalogue() {
    let out = rotor(&["providers", "--markdown"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let readme = include_str!("../README.md");
    let begin = "<!-- providers:begin (generated: rotor providers --markdown) -->\n";
    let end = "<!-- providers:end -->";
    let start = readme
        .find(begin)
        .expect("README.md has the providers:begin marker")
        + begin.len();
    let stop = start
        + readme[start..]
            .find(end)
            .expect("README.md has the providers:end marker");
    assert!(
        readme[start..stop] == table,
        "README.md's provider table is stale: replace the lines between its providers markers by the output of `cargo run -- providers --markdown`"
    );
    let out = rotor(&["providers", "--json"]);
    let catalogue: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let types: Vec<&str> = catalogue
        .iter()
        .map(|info| info["config_type"].as_str().unwrap())
        .collect();
    for known in ["rfc2136", "route53", "cloudflare"] {
        assert!(types.contains(&known), "{types:?}");
        assert!(table.contains(&format!("| `{known}` |")), "{table}");
    }
    let route53 = catalogue
        .iter()
        .find(|i| i["config_type"] == "route53")
        .unwrap();
    assert_eq!(route53["feature"], "route53");
}

/// A provider compiled out (`--no-default-features` leaves Route53 out) still parses, and the
/// config is refused at its entry with the feature to build with; with the feature it loads.
#[test]
fn a_provider_left_out_of_the_build_names_its_feature() {
    let dir = scratch();
    let config = dir.path().join("rotor.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {0}/state\nkey_dir: {0}/keys\nproviders:\n  aws:\n    type: route53\n    region: eu-west-1\nsigners: {{}}\ndomains: []\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = rotor(&["--config", &config.display().to_string(), "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "route53") {
        assert!(out.status.success(), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(
                "rotor.yaml:4:3: providers.aws: rotor was built without the cargo feature \"route53\""
            ),
            "{stderr}"
        );
    }
}

#[test]
fn status_and_plan_read_by_a_reader_that_stops_early_end_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = scratch();
    let root = dir.path().display().to_string();
    // Rows far beyond what a pipe holds: rotor is still writing when the reader goes.
    let list: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"name\": \"d{i}.example.com\", \"provider\": \"p\", \"signers\": [\"s\"]}}\n"
            )
        })
        .collect();
    fs::write(dir.path().join("domains.jsonl"), list).unwrap();
    let config = dir.path().join("rotor.yaml");
    fs::write(
        &config,
        format!(
            "state_dir: {root}/state\nkey_dir: {root}/keys\nproviders:\n  p: {{type: rfc2136, server: 127.0.0.1}}\nsigners:\n  s: {{type: exim, table: {root}/table, key_dir: {root}/exim}}\ndomains_file: domains.jsonl\n"
        ),
    )
    .unwrap();
    for command in ["status", "plan"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(["--config", &config.display().to_string(), command])
            .env_remove("ROTOR_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0; 1];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{command}: {stderr}");
        assert!(stderr.is_empty(), "{command}: {stderr}");
    }
}
