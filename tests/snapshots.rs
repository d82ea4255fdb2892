//! Snapshots (insta) of what users read: every command's `--help`, the plan of a domain's
//! first run, and `status`, `status --json` and `plan --json` once its first key is published
//! and waits for `min_wait`.
//! Times, selectors' dates, key material, ports and paths are redacted; everything else must
//! stay as reviewed (`cargo insta review` after an intended change).

mod support;

use std::process::Command;

use support::{Bind, Rotor, Secondary, Setup, scratch};

/// The commands whose `--help` is kept.
const COMMANDS: &[&str] = &[
    "",
    "run",
    "rotate",
    "status",
    "plan",
    "history",
    "report",
    "check",
    "revoke",
    "daemon",
    "init",
    "providers",
    "completions",
];

#[test]
fn every_help_text_is_as_reviewed() {
    for command in COMMANDS {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "rotor {args:?}");
        let name = if command.is_empty() { "rotor" } else { command };
        insta::assert_snapshot!(format!("help_{name}"), String::from_utf8_lossy(&out.stdout));
    }
}

/// Hides what changes from run to run.
fn redacted(run: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]"),
        (r"t\d{8}(-\d+)?", "[selector]"),
        (r"p=[A-Za-z0-9+/=]+", "p=[key]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r#""(until|at)": \d+"#, r#""$1": [unix]"#),
        (r"/[^\s\x22]*/rotor-test-[A-Za-z0-9]+", "[dir]"),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.bind(run);
}

#[test]
fn status_and_plan_of_a_published_key_are_as_reviewed() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let setup = Setup {
        min_wait: "1h",
        timeout: "2h",
        ..Setup::default()
    };
    let rotor = Rotor::new(dir.path(), &bind, setup);
    redacted(|| insta::assert_snapshot!("plan_before_the_first_run", rotor.ok(&["plan"])));
    rotor.ok(&["run"]);
    redacted(|| {
        insta::assert_snapshot!("status", rotor.ok(&["status"]));
        insta::assert_snapshot!("status_json", rotor.ok(&["status", "--json"]));
        // One domain's status, read from that domain's records alone, is the same rows.
        assert_eq!(
            rotor.ok(&["status", "--json", "example.com"]),
            rotor.ok(&["status", "--json"])
        );
        insta::assert_snapshot!("plan_json", rotor.ok(&["plan", "--json"]));
        insta::assert_snapshot!("plan", rotor.ok(&["plan"]));
    });
}
