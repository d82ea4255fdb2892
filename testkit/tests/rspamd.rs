//! The facts `rotor_testkit::rspamd` documents, checked against the installed rspamd 3.4 (these
//! tests install nothing: `apt-get install rspamd`, `pip install dkimpy pynacl cryptography`;
//! tests/run.sh does both). Each signature is verified independently by dkimpy against a record
//! computed from the key file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testkit::rspamd::{Rspamd, write_atomic};
use rotor_testkit::{Bind, Secondary, run_with_input, scratch_in, wait_for};

fn scratch() -> tempfile::TempDir {
    scratch_in(env!("CARGO_TARGET_TMPDIR"))
}

fn message(domain: &str, n: usize) -> String {
    format!(
        "From: Probe <probe@{domain}>\r\nTo: someone@example.net\r\nSubject: rotor probe {n}\r\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <probe-{n}@{domain}>\r\n\r\nHello.\r\n"
    )
}

fn run(command: &mut Command) {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An RSA key as `openssl genpkey` writes it (PKCS#8 PEM).
fn rsa_pkcs8(path: &Path) {
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(path));
}

/// An Ed25519 key as base64 of its 32-byte seed.
fn ed25519_seed(path: &Path) {
    run(Command::new("python3").arg("-c").arg(
        "import base64, os, sys; open(sys.argv[1], 'w').write(base64.b64encode(os.urandom(32)).decode() + '\\n')",
    ).arg(path));
}

/// An Ed25519 key as `rspamadm dkim_keygen -t ed25519` writes it (base64 of seed || public key).
fn ed25519_rspamadm(path: &Path, domain: &str, selector: &str) {
    run(Command::new("rspamadm")
        .args([
            "dkim_keygen",
            "-t",
            "ed25519",
            "-d",
            domain,
            "-s",
            selector,
            "-k",
        ])
        .arg(path)
        .stdout(Stdio::null()));
}

/// `(d, s, a)` of every DKIM-Signature header, in order.
fn signatures(signed: &str) -> Vec<(String, String, String)> {
    let head = signed.split("\r\n\r\n").next().unwrap();
    let mut values: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut() {
                value.push_str(line);
            }
            continue;
        }
        values.extend(current.take());
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("DKIM-Signature")
        {
            current = Some(value.to_string());
        }
    }
    values.extend(current);
    values
        .iter()
        .map(|value| {
            let tag = |name: &str| {
                value
                    .split(';')
                    .find_map(|t| {
                        let (k, v) = t.split_once('=')?;
                        (k.trim() == name).then(|| v.split_whitespace().collect::<String>())
                    })
                    .unwrap_or_default()
            };
            (tag("d"), tag("s"), tag("a"))
        })
        .collect()
}

/// Verifies every signature of `signed` with dkimpy against records computed from `keys`
/// (`(selector, domain, key file)`); the script's report, or why it failed.
fn verify(signed: &str, keys: &[(&str, &str, &Path)]) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dkim_verify_keys.py");
    let mut python = Command::new("python3");
    python.arg(script).args(
        keys.iter()
            .map(|(s, d, path)| format!("{s}._domainkey.{d}={}", path.display())),
    );
    let out = run_with_input(python, signed.as_bytes());
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(report)
    } else {
        Err(format!(
            "{report}(pip install dkimpy pynacl cryptography?)\n{signed}"
        ))
    }
}

fn key_path(dir: &Path, domain: &str, selector: &str) -> PathBuf {
    dir.join(format!("keys/{domain}.{selector}.key"))
}

/// a, d, e: a selector map replaced by rename applies to the next message, no signal; every
/// worker listens on loopback only; configtest accepts the private config.
#[test]
fn selector_map_swap_applies_to_the_next_message() {
    let tmp = scratch();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("keys")).unwrap();
    rsa_pkcs8(&key_path(dir, "example.com", "sel1"));
    let map = dir.join("selectors.map");
    write_atomic(&map, "example.com sel1\n");
    let conf = format!(
        "path = \"{keys}/$domain.$selector.key\";\nselector_map = \"{map}\";\n",
        keys = dir.join("keys").display(),
        map = map.display()
    );
    let started = Instant::now();
    let rspamd = Rspamd::start(dir, &conf);
    eprintln!("rspamd answered after {:?}", started.elapsed());

    let listening = rspamd.listening();
    for port in [rspamd.port, rspamd.controller_port, rspamd.milter_port] {
        assert!(
            listening.contains(&([127, 0, 0, 1], port).into()),
            "{port} in {listening:?}"
        );
    }
    assert!(
        listening.iter().all(|a| a.ip().is_loopback()),
        "rspamd listens beyond loopback: {listening:?}"
    );
    rspamd.configtest().expect("configtest accepts the config");

    let signed = rspamd.sign(&message("example.com", 0));
    assert_eq!(
        signatures(&signed),
        [("example.com".into(), "sel1".into(), "rsa-sha256".into())]
    );
    let key1 = key_path(dir, "example.com", "sel1");
    verify(&signed, &[("sel1", "example.com", &key1)]).unwrap();

    // Swap back and forth. The switch is asynchronous: the map watcher (inotify) schedules the
    // reread, so a message scanned right after the rename may still get the old selector, for
    // a few milliseconds (without inotify: up to the 30 s stat poll).
    for round in 2..6 {
        let (previous, selector) = (format!("sel{}", round - 1), format!("sel{round}"));
        let key = key_path(dir, "example.com", &selector);
        if round % 2 == 0 {
            rsa_pkcs8(&key);
        } else {
            ed25519_seed(&key);
        }
        write_atomic(&map, format!("example.com {selector}\n"));
        let renamed = Instant::now();
        let mut old = 0;
        let signed = loop {
            let signed = rspamd.sign(&message("example.com", round));
            let found = signatures(&signed);
            assert_eq!(found.len(), 1, "{signed}");
            if found[0].1 == selector {
                break signed;
            }
            assert_eq!(found[0].1, previous, "only the old or the new selector");
            old += 1;
            assert!(
                renamed.elapsed() < Duration::from_secs(35),
                "the map was not reread:\n{}",
                rspamd.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        eprintln!(
            "{selector}: applied {:?} after the rename, {old} message(s) signed with {previous} meanwhile",
            renamed.elapsed()
        );
        verify(&signed, &[(&selector, "example.com", &key)]).unwrap();
    }
    let log = rspamd.log();
    assert!(log.contains("rereading map file"), "{log}");
    assert!(!log.contains("requested to reload configuration"), "{log}");
}

fn domains_conf(selectors: &[(&str, &Path)]) -> String {
    let entries: Vec<String> = selectors
        .iter()
        .map(|(selector, path)| {
            format!(
                "      {{ path = \"{}\"; selector = \"{selector}\"; }}",
                path.display()
            )
        })
        .collect();
    format!(
        "domain {{\n  example.com {{\n    selectors [\n{}\n    ]\n  }}\n}}\n",
        entries.join(",\n")
    )
}

/// b, d, e: RSA + Ed25519 for one domain in a `domain { }` block (an included file) needs SIGHUP;
/// after it, both signatures; a config that does not parse fails configtest and is refused by
/// the reload, and the old config keeps signing.
#[test]
fn dual_signing_applies_after_sighup() {
    let tmp = scratch();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("keys")).unwrap();
    let rsa = key_path(dir, "example.com", "rsa1");
    let ed = key_path(dir, "example.com", "ed1");
    rsa_pkcs8(&rsa);
    ed25519_rspamadm(&ed, "example.com", "ed1");
    let domains = dir.join("domains.conf");
    write_atomic(&domains, domains_conf(&[("rsa1", &rsa)]));
    let rspamd = Rspamd::start(dir, &format!(".include \"{}\"\n", domains.display()));

    let signed = rspamd.sign(&message("example.com", 0));
    assert_eq!(
        signatures(&signed),
        [("example.com".into(), "rsa1".into(), "rsa-sha256".into())]
    );

    write_atomic(&domains, domains_conf(&[("rsa1", &rsa), ("ed1", &ed)]));
    for n in 1..4 {
        let signed = rspamd.sign(&message("example.com", n));
        assert_eq!(signatures(&signed).len(), 1, "applied without SIGHUP");
    }

    let reloading = Instant::now();
    rspamd.reload();
    eprintln!("rspamd reloaded in {:?}", reloading.elapsed());
    let signed = rspamd.sign(&message("example.com", 4));
    assert_eq!(
        signatures(&signed),
        [
            ("example.com".into(), "rsa1".into(), "rsa-sha256".into()),
            ("example.com".into(), "ed1".into(), "ed25519-sha256".into()),
        ]
    );
    let report = verify(
        &signed,
        &[("rsa1", "example.com", &rsa), ("ed1", "example.com", &ed)],
    )
    .unwrap();
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), 2);

    // A broken config: configtest says so, the reload is refused, the old config keeps signing.
    rspamd.configtest().expect("configtest accepts the config");
    write_atomic(&domains, "domain { example.com { selectors [ \n");
    let refused = rspamd.configtest().expect_err("configtest refuses");
    assert!(refused.contains("syntax BAD"), "{refused}");
    let line = rspamd.try_reload().expect_err("the reload is refused");
    assert!(line.contains("cannot parse new config file"), "{line}");
    let signed = rspamd.sign(&message("example.com", 5));
    assert_eq!(signatures(&signed).len(), 2, "{signed}");
}

/// c, d, e, f: which key file formats rspamd 3.4 signs with, and what happens without a usable
/// key.
#[test]
fn key_formats_and_unusable_keys() {
    let tmp = scratch();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("keys")).unwrap();
    let key = |domain: &str| key_path(dir, domain, "k");

    rsa_pkcs8(&key("rsa-pkcs8.test"));
    run(Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(key("rsa-pkcs1.test"))
        .arg("2048"));
    run(Command::new("openssl")
        .args(["pkey", "-outform", "DER", "-in"])
        .arg(key("rsa-pkcs8.test"))
        .arg("-out")
        .arg(key("rsa-der.test")));
    ed25519_seed(&key("ed-seed.test"));
    ed25519_rspamadm(&key("ed-rspamadm.test"), "ed-rspamadm.test", "k");
    // A raw seed rspamd cannot take for base64, which it tries before raw bytes: its check stops
    // at the first '=', so random bytes with one before any other byte outside base64 (about
    // 1 in 190) decode to a key of the wrong length and nothing is signed (CI saw it once).
    run(Command::new("python3")
        .arg("-c")
        .arg("import os, sys; open(sys.argv[1], 'wb').write(b'\\xff' + os.urandom(31))")
        .arg(key("ed-raw.test")));
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(key("ed-pem.test")));
    fs::create_dir(key("directory.test")).unwrap();
    fs::write(key("garbage.test"), "not a key\n").unwrap();

    let signing = [
        ("rsa-pkcs8.test", "rsa-sha256"),
        ("rsa-pkcs1.test", "rsa-sha256"),
        ("rsa-der.test", "rsa-sha256"),
        ("ed-seed.test", "ed25519-sha256"),
        ("ed-rspamadm.test", "ed25519-sha256"),
        ("ed-raw.test", "ed25519-sha256"),
    ];
    let refused = [
        ("ed-pem.test", "cannot extract rsa key from evp key"),
        ("missing.test", "cannot stat key file"),
        ("directory.test", "cannot map key file"),
        ("garbage.test", "cannot parse raw private key"),
    ];
    let map = dir.join("selectors.map");
    let lines: String = signing
        .iter()
        .map(|(d, _)| d)
        .chain(refused.iter().map(|(d, _)| d))
        .map(|d| format!("{d} k\n"))
        .collect();
    write_atomic(&map, lines);
    let conf = format!(
        "path = \"{keys}/$domain.$selector.key\";\nselector_map = \"{map}\";\n",
        keys = dir.join("keys").display(),
        map = map.display()
    );
    let rspamd = Rspamd::start(dir, &conf);
    // configtest does not open key files: missing and broken keys pass.
    rspamd.configtest().expect("configtest accepts the config");

    for (n, (domain, algorithm)) in signing.iter().enumerate() {
        let signed = rspamd.sign(&message(domain, n));
        assert_eq!(
            signatures(&signed),
            [(domain.to_string(), "k".into(), algorithm.to_string())],
            "{domain}"
        );
        let path = key(domain);
        verify(&signed, &[("k", domain, &path)]).unwrap_or_else(|e| panic!("{domain}: {e}"));
    }
    for (n, (domain, logged)) in refused.iter().enumerate() {
        let reply = rspamd.scan(&message(domain, n));
        assert!(reply.get("dkim-signature").is_none(), "{domain}: {reply}");
        assert!(
            reply["symbols"].get("DKIM_SIGNED").is_none(),
            "{domain}: {reply}"
        );
        let line = format!("cannot load dkim key {}: {logged}", key(domain).display());
        wait_for(
            &format!("`{line}` in the log"),
            Duration::from_secs(10),
            || rspamd.log().contains(&line),
        );
    }
    // The other domains are still signed.
    let signed = rspamd.sign(&message("rsa-pkcs8.test", 99));
    assert_eq!(signatures(&signed).len(), 1, "{signed}");
}

/// The record `dkim_verify_keys.py --record` computes for a key file.
fn record(key: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dkim_verify_keys.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--record")
        .arg(key)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// g: `check_pubkey = true; allow_pubkey_mismatch = false;` makes rspamd look the selector up
/// (here on a BIND primary) before signing, and refuse when the record is missing or holds
/// another key.
#[test]
fn check_pubkey_signs_only_with_a_published_key() {
    let tmp = scratch();
    let dir = tmp.path();
    let bind = Bind::start(&dir.join("bind"), Secondary::Notified);
    fs::create_dir_all(dir.join("keys")).unwrap();
    let (ed1, ed2) = (
        key_path(dir, "example.com", "ed1"),
        key_path(dir, "example.com", "ed2"),
    );
    ed25519_seed(&ed1);
    ed25519_seed(&ed2);
    let map = dir.join("selectors.map");
    write_atomic(&map, "example.com ed1\n");
    let conf = format!(
        "path = \"{keys}/$domain.$selector.key\";\nselector_map = \"{map}\";\n\
         check_pubkey = true;\nallow_pubkey_mismatch = false;\n",
        keys = dir.join("keys").display(),
        map = map.display()
    );
    let rspamd = Rspamd::start_with_dns(dir, &conf, Some(bind.primary.port));

    // Not published: no signature.
    let reply = rspamd.scan(&message("example.com", 0));
    assert!(reply.get("dkim-signature").is_none(), "{reply}");
    let line = "public key for domain example.com/ed1 is not found";
    wait_for(
        &format!("`{line}` in the log"),
        Duration::from_secs(10),
        || rspamd.log().contains(line),
    );

    // Published: signed.
    bind.plant("ed1._domainkey.example.com", &record(&ed1));
    let signed = rspamd.sign(&message("example.com", 1));
    assert_eq!(
        signatures(&signed),
        [("example.com".into(), "ed1".into(), "ed25519-sha256".into())]
    );
    verify(&signed, &[("ed1", "example.com", &ed1)]).unwrap();

    // ed2's record holds ed1's key: once the map says ed2, no signature.
    bind.plant("ed2._domainkey.example.com", &record(&ed1));
    write_atomic(&map, "example.com ed2\n");
    let line = "public key for example.com/ed2 does not match private key";
    wait_for(
        &format!("`{line}` in the log"),
        Duration::from_secs(35),
        || {
            let signed = rspamd.sign(&message("example.com", 2));
            for (_, selector, _) in signatures(&signed) {
                assert_eq!(selector, "ed1", "{signed}");
            }
            rspamd.log().contains(line)
        },
    );
    let reply = rspamd.scan(&message("example.com", 3));
    assert!(reply.get("dkim-signature").is_none(), "{reply}");
}

/// A dkim_signing.conf that does not parse: rspamd exits at once and `start` panics with its log.
#[test]
#[should_panic(expected = "rspamd_config_read: failed to load config")]
fn start_reports_a_config_that_does_not_parse() {
    let tmp = scratch();
    let _rspamd = Rspamd::start(tmp.path(), "domain { example.com {\n");
}
