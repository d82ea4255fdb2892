//! The commands that need no rotation: `init` and `completions`, and `--help` on every command.

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
        "completions",
    ] {
        let help = rotor(&[command, "--help"]);
        assert!(help.status.success(), "{command} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: rotor"));
    }
}
