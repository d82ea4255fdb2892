//! KumoMTA cannot be installed here (not in Debian): its dkim_sign.lua helper's data file is
//! checked against the documented format instead (`testkit/helpers/kumo_dkim_data_check.py`,
//! https://docs.kumomta.com/userguide/configuration/dkim/). The example is the file rotor's
//! KumoMTA adapter writes: one block per domain with its selector, algorithm and key file.

use std::path::Path;
use std::process::Command;

fn check(file: &Path) -> (bool, String) {
    let helpers = Path::new(env!("CARGO_MANIFEST_DIR")).join("helpers");
    let out = Command::new("python3")
        .arg(helpers.join("kumo_dkim_data_check.py"))
        .arg(file)
        .output()
        .expect("python3 runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_example_follows_the_documented_format() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("kumomta/dkim_data.example.toml");
    assert_eq!(check(&example), (true, String::new()));
}

#[test]
fn the_checker_rejects_what_the_helper_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dkim_data.toml");
    std::fs::write(
        &file,
        "[base]\nadditional_signatures = [\"ed\"]\n\n[domain.\"example.com\"]\nalgo = \"rsa\"\nkey = \"k.pem\"\n",
    )
    .unwrap();
    let (ok, problems) = check(&file);
    assert!(!ok);
    for expected in [
        "unknown key key",
        "no selector and no base.selector",
        "algo 'rsa'",
        "names 'ed': no such signature block",
    ] {
        assert!(problems.contains(expected), "{expected}: {problems}");
    }
}
