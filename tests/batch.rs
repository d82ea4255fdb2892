//! Many domains in one zone: a pass reserves and publishes their keys with a handful of API
//! calls (one listing and one batch per 200 records), not a few calls per domain.

mod support;

use std::fmt::Write as _;
use std::fs;
use std::process::Command;

use support::cloudflare::{CloudflareDouble, TOKEN};
use support::{Bind, Secondary, scratch, write_private};

const DOMAINS: usize = 250;

/// A config with `count` domains `d0.example.com`, … in zone example.com, with `provider`.
fn config(
    dir: &std::path::Path,
    count: usize,
    keys: &str,
    provider: &str,
    bind: &Bind,
) -> std::path::PathBuf {
    let mut config = format!(
        "state_dir: {d}/state
key_dir: {d}/keys
defaults:
  keys: [{keys}]
  propagation: {{authoritative: [\"127.0.0.1:{port}\"], min_wait: 1h}}
providers:
{provider}
signers:
  mx1:
    type: opendkim
    key_table: {d}/KeyTable
    signing_table: {d}/SigningTable
    key_dir: {d}/dkimkeys
    reload: \"true\"
domains:
",
        d = dir.display(),
        port = bind.primary.port,
    );
    for i in 0..count {
        writeln!(
            config,
            "  - {{name: d{i}.example.com, provider: p, signers: [mx1]}}"
        )
        .unwrap();
    }
    let path = dir.join("rotor.yaml");
    fs::write(&path, config).unwrap();
    path
}

fn cloudflare_provider(dir: &std::path::Path, double: &CloudflareDouble) -> String {
    write_private(&dir.join("token"), TOKEN);
    format!(
        "  p:\n    type: cloudflare\n    api_url: {}\n    api_token_file: {}/token",
        double.api_url(),
        dir.display()
    )
}

/// Runs `rotor ARGS` and returns how long it took.
fn timed(path: &std::path::Path, args: &[&str]) -> std::time::Duration {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("--config")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

#[test]
fn a_pass_over_many_domains_in_one_zone_uses_batched_calls() {
    let dir = scratch();
    let double = CloudflareDouble::start(&["example.com"], None);
    // The zone's nameserver, asked whether selectors are aliases (its records are not checked:
    // min_wait is 1h).
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    // rsa-1024: fast to generate; the key size does not change the calls.
    let path = config(
        dir.path(),
        DOMAINS,
        "rsa-1024",
        &cloudflare_provider(dir.path(), &double),
        &bind,
    );
    timed(&path, &["run"]);

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

/// Benchmark (numbers, no assertion on time): a first pass over ROTOR_BENCH_DOMAINS (default
/// 1,000) domains with RSA-2048 keys, through the Cloudflare double and through RFC 2136 on
/// BIND. Run: `cargo test --release --test batch -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_a_first_pass_over_many_domains() {
    let count: usize = std::env::var("ROTOR_BENCH_DOMAINS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let dir = scratch();
    let double = CloudflareDouble::start(&["example.com"], None);
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let cf = dir.path().join("cloudflare");
    fs::create_dir_all(&cf).unwrap();
    let path = config(
        &cf,
        count,
        "rsa-2048",
        &cloudflare_provider(&cf, &double),
        &bind,
    );
    let first = timed(&path, &["run"]);
    let calls = double.calls();
    let again = timed(&path, &["run"]);
    println!(
        "cloudflare double, {count} domains: first pass {first:.1?} ({} API calls: {}), second pass {again:.1?}",
        calls["total"], calls["by_route"]
    );

    let rfc = dir.path().join("rfc2136");
    fs::create_dir_all(&rfc).unwrap();
    let provider = format!(
        "  p:\n    type: rfc2136\n    server: 127.0.0.1:{}\n    tsig_key_file: {}",
        bind.primary.port,
        bind.tsig_file.display()
    );
    let path = config(&rfc, count, "rsa-2048", &provider, &bind);
    let first = timed(&path, &["run"]);
    let again = timed(&path, &["run"]);
    let axfr = Command::new("dig")
        .args([
            "+nocmd",
            "+nostats",
            "@127.0.0.1",
            "-p",
            &bind.primary.port.to_string(),
            "AXFR",
            "example.com",
        ])
        .output()
        .unwrap();
    let published = String::from_utf8_lossy(&axfr.stdout)
        .lines()
        .filter(|l| l.contains("._domainkey.d"))
        .count();
    println!(
        "rfc2136 on BIND, {count} domains: first pass {first:.1?} ({published} records on the primary), second pass {again:.1?}"
    );
}
