//! Two full rotations of example.com through the real binary, against a real BIND primary and
//! secondary, checked at every step the way an operator would check them.

mod support;

use std::fs;

use support::cloudflare::CloudflareDouble;
use support::route53::MotoRoute53;
use support::{
    Bind, ProviderUnderTest, Rotor, Secondary, Setup, cloudflare, dkimpy_verifies, mode, route53,
    scratch,
};

fn row(rotor: &Rotor, selector: &str) -> serde_json::Value {
    rotor
        .status()
        .into_iter()
        .find(|row| row["selector"] == selector)
        .unwrap_or_else(|| panic!("{selector} in status"))
}

#[test]
fn two_full_rotations_on_real_bind() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    two_full_rotations(&dir, &bind, Some(bind.provider()));
}

/// The same through Cloudflare's API (the schema-checked double), whose records are served by
/// the BIND servers as Cloudflare's nameservers would serve them.
#[test]
fn two_full_rotations_through_cloudflare() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let double = CloudflareDouble::start(&["example.com"], Some(&bind));
    two_full_rotations(
        &dir,
        &bind,
        Some(cloudflare::provider(&double.api_url(), dir.path())),
    );
    let records = double.records("example.com");
    assert_eq!(
        records.len(),
        1,
        "only the active key's record is left: {records:?}"
    );
    assert_eq!(records[0]["comment"], rotor_providers::cloudflare::MARKER);
    assert_eq!(double.violations(), Vec::<serde_json::Value>::new());
}

/// The same through Route53's API (moto), whose records are served by the BIND servers as
/// Route53's nameservers would serve them.
#[test]
fn two_full_rotations_through_route53() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let moto = MotoRoute53::start(&["example.com"], Some(&bind));
    two_full_rotations(&dir, &bind, Some(route53::provider(&moto.url())));
}

fn two_full_rotations(dir: &tempfile::TempDir, bind: &Bind, provider: Option<ProviderUnderTest>) {
    // min_wait of 3 s: long enough that the first run cannot also activate the key.
    let setup = Setup {
        min_wait: "3s",
        provider,
        ..Setup::default()
    };
    let rotor = Rotor::new(dir.path(), bind, setup);
    // `check` proves the credentials (TSIG key, or Cloudflare token and zone access) first.
    let check = rotor.ok(&["check"]);
    assert!(
        check.contains("ok    example.com: provider bind accepts updates to zone example.com"),
        "{check}"
    );
    assert!(!check.contains("FAIL"), "{check}");
    let operator_rows = fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap();

    // Before any run: the domain waits for its first rotation.
    let status = rotor.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0]["domain"], "example.com");
    assert_eq!(status[0]["waiting_for"], "first rotation on the next run");

    // `plan` says what the first run will do, and does nothing.
    let plan = rotor.ok(&["plan"]);
    assert!(
        plan.starts_with("example.com -: start a rotation: new rsa-2048 key"),
        "{plan}"
    );
    assert_eq!(
        rotor.status()[0]["waiting_for"],
        "first rotation on the next run"
    );

    // First pass: key generated and published, not yet active (min_wait).
    rotor.ok(&["run"]);
    let (first, phase) = rotor.phases()[0].clone();
    assert_eq!(phase, "published");
    assert!(first.starts_with('t'), "{first}");
    let name = format!("{first}._domainkey.example.com");
    let key_file = rotor
        .dir
        .join("keys/example.com")
        .join(format!("{first}.pem"));
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&rotor.dir.join("keys")), 0o700);
    assert_eq!(mode(&rotor.dir.join("keys/example.com")), 0o700);
    assert_eq!(bind.primary.txt(&name).len(), 1, "published on the primary");
    assert_eq!(
        rotor.signing_selector(),
        None,
        "no signer switch before the record is visible"
    );
    let published = row(&rotor, &first);
    assert_eq!(published["algorithm"], "rsa-2048");
    assert!(published["since"].as_str().unwrap().ends_with('Z'));
    assert!(!published["next_at"].is_null());
    assert_eq!(published["waiting_for"], "min_wait after publishing");
    assert!(published["error"].is_null());

    // Then it propagates and becomes active.
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    assert_eq!(rotor.selector_in("active").as_deref(), Some(first.as_str()));
    for server in bind.servers() {
        assert_eq!(
            server.txt(&name).len(),
            1,
            "exactly one record on port {}",
            server.port
        );
    }
    let active = row(&rotor, &first);
    assert_eq!(active["waiting_for"], "next rotation");
    let servers = active["servers"].as_array().unwrap();
    let roles: Vec<&str> = servers
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["authoritative", "authoritative", "resolver"]);
    assert!(servers.iter().all(|s| s["ok"] == true), "{servers:?}");
    assert_eq!(rotor.signing_selector().as_deref(), Some(first.as_str()));
    let signer_key = rotor.signer_key_file(&first).expect("KeyTable row");
    assert_eq!(mode(&signer_key), 0o600);
    assert_eq!(fs::read(&signer_key).unwrap(), fs::read(&key_file).unwrap());
    for server in bind.servers() {
        dkimpy_verifies(&signer_key, &first, server.port).unwrap();
    }
    let reloads = fs::read_to_string(rotor.signer_dir().join("reloads.log")).unwrap();
    assert_eq!(reloads.lines().count(), 1);

    let mut previous = first;
    for round in 2..=3 {
        rotor.ok(&["rotate", "example.com"]);
        rotor.run_until("new key active", |r| {
            r.selector_in("active").is_some_and(|s| s != previous)
        });
        let current = rotor.selector_in("active").unwrap();
        let old_name = format!("{previous}._domainkey.example.com");
        let new_name = format!("{current}._domainkey.example.com");

        // The old key stays published and loaded through its grace window.
        assert_eq!(row(&rotor, &previous)["phase"], "retiring", "round {round}");
        for server in bind.servers() {
            assert_eq!(
                server.txt(&old_name).len(),
                1,
                "old record kept during grace"
            );
            assert_eq!(server.txt(&new_name).len(), 1, "new record everywhere");
        }
        assert_eq!(rotor.signing_selector().as_deref(), Some(current.as_str()));
        assert!(
            rotor.signer_key_file(&previous).is_some(),
            "old KeyTable row kept during grace"
        );
        let signer_key = rotor.signer_key_file(&current).unwrap();
        dkimpy_verifies(&signer_key, &current, bind.secondary.port).unwrap();

        // After the grace window: record gone everywhere, private keys destroyed.
        rotor.run_until("old key retired", |r| {
            r.phases()
                .iter()
                .any(|(s, p)| *s == previous && p == "retired")
        });
        support::wait_for(
            "the secondary to drop the old record",
            std::time::Duration::from_secs(20),
            || {
                bind.servers()
                    .iter()
                    .all(|server| server.txt(&old_name).is_empty())
            },
        );
        assert!(
            !rotor
                .dir
                .join("keys/example.com")
                .join(format!("{previous}.pem"))
                .exists()
        );
        assert_eq!(rotor.signer_key_file(&previous), None);
        assert!(
            !rotor
                .signer_dir()
                .join(format!("keys/example.com.{previous}.pem"))
                .exists()
        );
        previous = current;
    }

    // Only the active key is left, in rotor's key directory and in the signer's.
    assert_eq!(
        fs::read_dir(rotor.dir.join("keys/example.com"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        fs::read_dir(rotor.signer_dir().join("keys"))
            .unwrap()
            .count(),
        1
    );
    // Records rotor did not create are untouched; the operator's signing rows too.
    for server in bind.servers() {
        assert_eq!(server.txt("example.com"), ["v=spf1 -all"]);
        assert_eq!(server.txt("other._domainkey.example.com").len(), 1);
    }
    let signing = fs::read_to_string(rotor.signer_dir().join("SigningTable")).unwrap();
    assert!(signing.starts_with(&operator_rows), "{signing}");
    let phases: Vec<String> = rotor.phases().into_iter().map(|(_, p)| p).collect();
    assert_eq!(phases, ["retired", "retired", "active"]);
    // Nothing is due: `plan` says so, and a run changes nothing and prints nothing.
    assert_eq!(rotor.ok(&["plan"]), "nothing to do now\n");
    let out = rotor.cmd(&["run"]);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Domains listed in a `domains_file` rotate like those of the YAML: each ends signed with a
/// key whose record both nameservers serve (dkimpy checks it against the secondary).
#[test]
fn domains_in_a_domains_file_rotate_like_those_in_the_yaml() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let list = "# exported\n{\"name\": \"a.example.com\", \"provider\": \"bind\", \"signers\": [\"mx1\"]}\n";
    fs::write(dir.path().join("domains.jsonl"), list).unwrap();
    rotor.edit_config(|config| {
        let path = dir.path().join("domains.jsonl");
        format!("{config}domains_file: {}\n", path.display())
    });
    rotor.run_until("both active", |r| {
        let phases = r.phases();
        phases.len() == 2 && phases.iter().all(|(_, p)| p == "active")
    });
    let domains: Vec<String> = rotor
        .status()
        .iter()
        .map(|row| row["domain"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(domains, ["example.com", "a.example.com"]);
    let (selector, key) = rotor
        .signing_for("a.example.com")
        .expect("a.example.com is signed");
    support::dkimpy_verifies_for("a.example.com", &key, &selector, bind.secondary.port)
        .unwrap_or_else(|err| panic!("{err}"));
}

/// A pass that changed nothing keeps the backup as it is (copying a large store after every
/// idle pass would cost more than the pass); one that changed something replaces it.
#[test]
fn only_a_pass_that_changed_something_replaces_the_backup() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    rotor.run_until("active", |r| r.selector_in("active").is_some());
    let backup = dir.path().join("state/store.backup");
    let copy = || fs::metadata(&backup).unwrap().ino();
    let before = copy();
    rotor.ok(&["run"]);
    rotor.ok(&["run"]);
    assert_eq!(copy(), before, "idle passes keep the backup");
    rotor.ok(&["rotate", "example.com"]);
    assert_ne!(
        copy(),
        before,
        "a pass that started a rotation backs the store up"
    );
}

/// Timer runs farther apart than the grace window (a daily timer, a grace of hours) are no
/// clock jump: the machine's boot clock counted the same time. The first run after the window
/// retires the replaced key, with no warning.
#[test]
fn runs_farther_apart_than_the_grace_window_still_retire() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    rotor.run_until("active", |r| r.selector_in("active").is_some());
    let old = rotor.selector_in("active").unwrap();
    rotor.ok(&["rotate", "example.com"]);
    rotor.run_until("the old key in its grace window", |r| {
        r.selector_in("retiring").as_deref() == Some(old.as_str())
    });
    // The next timer run comes later than the grace window (2 s): the time between runs is
    // what this test is about.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let out = rotor.cmd(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("held for this pass"),
        "{stderr}"
    );
    assert_eq!(row(&rotor, &old)["phase"], "retired", "{stderr}");
    assert!(
        bind.primary
            .txt(&format!("{old}._domainkey.example.com"))
            .is_empty(),
        "the primary still serves the old record"
    );
}
