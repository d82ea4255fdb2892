//! Many domains in one zone: a pass reserves and publishes their keys with a handful of API
//! calls (one listing and one batch per 200 records), not a few calls per domain.

mod support;

use std::fmt::Write as _;
use std::fs;
use std::process::Command;

use support::cloudflare::{CloudflareDouble, TOKEN};
use support::scratch;

const DOMAINS: usize = 250;

#[test]
fn a_pass_over_many_domains_in_one_zone_uses_batched_calls() {
    let dir = scratch();
    let double = CloudflareDouble::start(&["example.com"], None);
    fs::write(dir.path().join("token"), TOKEN).unwrap();
    let mut config = format!(
        "state_dir: {d}/state
key_dir: {d}/keys
defaults:
  keys: [rsa-1024]          # fast to generate; the size does not change the calls
  propagation: {{authoritative: none, min_wait: 1h}}
providers:
  cf:
    type: cloudflare
    api_url: {api}
    api_token_file: {d}/token
signers:
  mx1:
    type: opendkim
    key_table: {d}/KeyTable
    signing_table: {d}/SigningTable
    key_dir: {d}/dkimkeys
    reload: \"true\"
domains:
",
        d = dir.path().display(),
        api = double.api_url()
    );
    for i in 0..DOMAINS {
        writeln!(
            config,
            "  - {{name: d{i}.example.com, provider: cf, signers: [mx1]}}"
        )
        .unwrap();
    }
    let path = dir.path().join("rotor.yaml");
    fs::write(&path, config).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(&path)
        .arg("run")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let records = double.records("example.com");
    assert_eq!(records.len(), DOMAINS, "one record per domain");
    let calls = double.calls();
    let by_route = &calls["by_route"];
    assert_eq!(
        by_route["POST /zones/{zone_id}/dns_records/batch"], 2,
        "200 + 50 records: {calls}"
    );
    assert_eq!(
        by_route["POST /zones/{zone_id}/dns_records"],
        serde_json::Value::Null,
        "{calls}"
    );
    // The account's zones once; the zone's TXT records once to reserve the selectors, once
    // before publishing and once more inside the batch write (each a page for an empty zone).
    assert_eq!(by_route["GET /zones"], 1, "{calls}");
    assert!(calls["total"].as_u64().unwrap() <= 8, "{calls}");
    assert_eq!(double.violations(), Vec::<serde_json::Value>::new());

    let status = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(&path)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.len(), DOMAINS);
    assert!(
        rows.iter().all(|r| r["phase"] == "published"),
        "{:?}",
        rows.iter().find(|r| r["phase"] != "published")
    );
}
