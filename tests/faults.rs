//! Faults on the way to the provider: with 30 % of provider calls failing (server errors,
//! throttling, hangs, resets, lost answers, delays past the timeout; seeded, so a failure
//! reproduces with the same `ROTOR_FAULT_SEED`), two rotations of five domains still complete
//! through repeated `rotor run`s, and nothing is lost or left behind: every domain's key active,
//! one record per domain in DNS, the old records gone, no stray key file.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use support::cloudflare::CloudflareDouble;
use support::faults::{FaultProxy, FaultStats, Upstream};
use support::route53::MotoRoute53;
use support::{
    Bind, ProviderUnderTest, Rotor, Secondary, Setup, cloudflare, join_quoted, route53, scratch,
};

const DOMAINS: [&str; 5] = [
    "d0.example.com",
    "d1.example.com",
    "d2.example.com",
    "d3.example.com",
    "d4.example.com",
];

/// The share of provider calls that fail.
const RATE: f64 = 0.3;

/// At most this many `rotor run`s for each of the two rotations.
const MAX_RUNS: usize = 40;

fn seed(default: u64) -> u64 {
    std::env::var("ROTOR_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `domain -> (selector, phase)` of every key, from `rotor status --all --json`.
fn keys(rotor: &Rotor) -> BTreeMap<String, Vec<(String, String)>> {
    let mut keys: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in rotor.status() {
        if let (Some(domain), Some(selector), Some(phase)) = (
            row["domain"].as_str(),
            row["selector"].as_str(),
            row["phase"].as_str(),
        ) {
            keys.entry(domain.to_string())
                .or_default()
                .push((selector.to_string(), phase.to_string()));
        }
    }
    keys
}

fn active(rotor: &Rotor) -> BTreeMap<String, String> {
    keys(rotor)
        .into_iter()
        .filter_map(|(domain, keys)| {
            keys.into_iter()
                .find(|(_, phase)| phase == "active")
                .map(|(selector, _)| (domain, selector))
        })
        .collect()
}

/// Runs `rotor run` until `done` holds, at most [`MAX_RUNS`] times; returns the failed runs.
fn run_until(rotor: &Rotor, what: &str, mut done: impl FnMut(&Rotor) -> bool) -> usize {
    let mut failed = 0;
    for _ in 0..MAX_RUNS {
        if !rotor.cmd(&["run"]).status.success() {
            failed += 1;
        }
        if done(rotor) {
            return failed;
        }
    }
    panic!(
        "{what}: not reached after {MAX_RUNS} runs ({failed} failed): {:?}",
        keys(rotor)
    );
}

/// Every TXT record under `_domainkey.` on the primary, by zone transfer: `(name, value)`.
fn dkim_records(bind: &Bind) -> Vec<(String, String)> {
    let out = Command::new("dig")
        .args(["+nocmd", "+nostats", "+nocomments", "@127.0.0.1", "-p"])
        .arg(bind.primary.port.to_string())
        .args(["AXFR", "example.com"])
        .output()
        .unwrap();
    let mut records: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.first()?.trim_end_matches('.');
            (name.contains("._domainkey.d") && fields.get(3) == Some(&"TXT"))
                .then(|| (name.to_string(), join_quoted(&fields[4..].join(" "))))
        })
        .collect();
    records.sort();
    records
}

/// Two rotations of every domain through `provider`, behind `proxy`; returns what happened.
fn two_rotations(dir: &std::path::Path, bind: &Bind, rotor: &Rotor, proxy: &FaultProxy) -> String {
    rotor.set_domains(&DOMAINS);
    let mut failed = run_until(rotor, "a first key active everywhere", |r| {
        active(r).len() == DOMAINS.len()
    });
    let first = active(rotor);
    // `rotate` starts the rotations at once (provider calls too): domains it could not start
    // are asked again.
    for attempt in 0.. {
        let keys = keys(rotor);
        let waiting: Vec<&str> = DOMAINS
            .iter()
            .copied()
            .filter(|domain| keys[*domain].iter().all(|(s, _)| *s == first[*domain]))
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(attempt < MAX_RUNS, "rotate never started {waiting:?}");
        let mut rotate = vec!["rotate"];
        rotate.extend(waiting);
        if !rotor.cmd(&rotate).status.success() {
            failed += 1;
        }
    }
    failed += run_until(rotor, "the second keys active and the first retired", |r| {
        let keys = keys(r);
        DOMAINS.iter().all(|domain| {
            let keys = &keys[*domain];
            keys.iter()
                .any(|(s, p)| p == "active" && *s != first[*domain])
                && keys
                    .iter()
                    .any(|(s, p)| p == "retired" && *s == first[*domain])
        })
    });

    // Every domain signs with its second key, whose record is the only one it has in DNS.
    let now = active(rotor);
    let records = dkim_records(bind);
    let expected: Vec<String> = DOMAINS
        .iter()
        .map(|domain| format!("{}._domainkey.{domain}", now[*domain]))
        .collect();
    let names: Vec<String> = records.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(
        names, expected,
        "one record per domain, the active key's: {records:?}"
    );
    assert!(
        records
            .iter()
            .all(|(_, value)| value.starts_with("v=DKIM1;")),
        "{records:?}"
    );
    for domain in DOMAINS {
        let files: Vec<String> = fs::read_dir(dir.join("keys").join(domain))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            [format!("{}.pem", now[domain])],
            "{domain}: key files"
        );
        let keys = &keys(rotor)[domain];
        assert!(
            keys.iter().all(|(_, p)| p == "active" || p == "retired"),
            "{domain}: {keys:?}"
        );
    }
    let stats: FaultStats = proxy.stats();
    format!(
        "{} provider calls, {} faults injected ({:?}), {} rotations completed, {failed} failed runs",
        stats.calls,
        stats.injected(),
        stats.faults,
        2 * DOMAINS.len()
    )
}

fn setup(provider: Option<ProviderUnderTest>) -> Setup {
    Setup {
        min_wait: "1s",
        grace: "1s",
        provider,
        ..Setup::default()
    }
}

#[test]
fn rotations_complete_through_cloudflare_faults() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let double = CloudflareDouble::start(&["example.com"], Some(&bind));
    let proxy = FaultProxy::start(Upstream::Cloudflare, double.port, RATE, seed(1), dir.path());
    let api = format!("{}/client/v4", proxy.url());
    let rotor = Rotor::new(
        dir.path(),
        &bind,
        setup(Some(cloudflare::provider(&api, dir.path()))),
    );
    let figures = two_rotations(dir.path(), &bind, &rotor, &proxy);
    println!("cloudflare, fault rate {RATE}: {figures}");
    assert_eq!(
        double.records("example.com").len(),
        DOMAINS.len(),
        "no duplicate or orphan record at the provider"
    );
    assert!(proxy.stats().injected() > 0);
}

#[test]
fn rotations_complete_through_route53_faults() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let moto = MotoRoute53::start(&["example.com"], Some(&bind));
    let proxy = FaultProxy::start(Upstream::Aws, moto.port, RATE, seed(2), dir.path());
    let rotor = Rotor::new(
        dir.path(),
        &bind,
        setup(Some(route53::provider(&proxy.url()))),
    );
    let figures = two_rotations(dir.path(), &bind, &rotor, &proxy);
    println!("route53, fault rate {RATE}: {figures}");
    assert!(proxy.stats().injected() > 0);
}

#[test]
fn rotations_complete_through_rfc2136_faults() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let proxy = FaultProxy::start(Upstream::Dns, bind.primary.port, RATE, seed(3), dir.path());
    let rotor = Rotor::new(dir.path(), &bind, setup(Some(bind.provider())));
    let primary = format!("server: 127.0.0.1:{}\n", bind.primary.port);
    rotor.edit_config(|config| {
        config.replacen(
            &primary,
            &format!("server: 127.0.0.1:{}\n    timeout: 2s\n", proxy.port),
            1,
        )
    });
    let figures = two_rotations(dir.path(), &bind, &rotor, &proxy);
    println!("rfc2136, fault rate {RATE}: {figures}");
    assert!(proxy.stats().injected() > 0);
}
