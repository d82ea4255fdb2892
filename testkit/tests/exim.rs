//! What rotor's `exim` signer adapter relies on, checked against Debian's Exim 4.96: one lsearch
//! table (domain -> selector list, `<selector>._domainkey.<domain>` -> key file) read by the smtp
//! transport per delivery, dual RSA + Ed25519 signing, the key formats and permissions Exim
//! accepts, and what it does when a key cannot be used. Every signature is verified by dkimpy.
//! Needs root (keys are given to the Debian-exim group) and exim4-daemon-light (tests/run.sh).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rotor_testkit::exim::{self, Exim, SENDER, Signature, give_to_exim_group};
use rotor_testkit::{DOMAIN, scratch_in};

const MESSAGE: &str = "From: Alice <alice@example.com>\nTo: Bob <bob@example.net>\nSubject: rotor test\n\nHello from rotor's Exim test.\n.leading dot\n";

fn scratch() -> tempfile::TempDir {
    scratch_in(env!("CARGO_TARGET_TMPDIR"))
}

/// `dir/keys`, laid out as on a Debian host: root:Debian-exim 0750.
fn key_dir(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).unwrap();
    give_to_exim_group(&keys, 0o750);
    keys
}

fn sh(script: &str) {
    let status = Command::new("sh").args(["-c", script]).status().unwrap();
    assert!(status.success(), "{script}");
}

/// A new private key at `path` (`openssl genpkey`: PKCS#8 PEM), root:Debian-exim 0640.
fn genkey(path: &Path, algorithm: &str) -> PathBuf {
    let opts = if algorithm == "rsa" {
        "-pkeyopt rsa_keygen_bits:2048"
    } else {
        ""
    };
    sh(&format!(
        "openssl genpkey -algorithm {algorithm} {opts} -out '{}' 2>/dev/null",
        path.display()
    ));
    give_to_exim_group(path, 0o640);
    path.to_owned()
}

/// Writes the table as rotor does: a temporary file renamed over the old one.
fn write_table(table: &Path, rows: &[(&str, &str)]) {
    let mut text = String::from("# written by rotor: do not edit\n");
    for (key, value) in rows {
        text.push_str(&format!("{key}: {value}\n"));
    }
    let tmp = table.with_extension("tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, table).unwrap();
}

/// A table signing example.com with `selectors` (name, key file).
fn table_for(table: &Path, selectors: &[(&str, &Path)]) {
    let list: Vec<&str> = selectors.iter().map(|(s, _)| *s).collect();
    let list = list.join(" : ");
    let names: Vec<(String, String)> = selectors
        .iter()
        .map(|(s, key)| {
            (
                format!("{s}._domainkey.{DOMAIN}"),
                key.display().to_string(),
            )
        })
        .collect();
    let mut rows = vec![(DOMAIN, list.as_str())];
    rows.extend(names.iter().map(|(n, k)| (n.as_str(), k.as_str())));
    write_table(table, &rows);
}

fn sig(selector: &str, algorithm: &str, verified: bool) -> Signature {
    Signature {
        domain: DOMAIN.into(),
        selector: selector.into(),
        algorithm: algorithm.into(),
        verified,
    }
}

/// a, d: RSA signing from the table; a table renamed into place is used by the very next
/// message, with no reload: by a fresh `exim -odi` and by a long-running daemon alike.
#[test]
fn rsa_signing_follows_the_table_with_no_reload() {
    let dir = scratch();
    let keys = key_dir(dir.path());
    let table = dir.path().join("dkim-table");
    let old = genkey(&keys.join("example.com.old.pem"), "rsa");
    let new = genkey(&keys.join("example.com.new.pem"), "rsa");
    let newer = genkey(&keys.join("example.com.newer.pem"), "rsa");
    let all = [
        ("old", DOMAIN, old.as_path()),
        ("new", DOMAIN, new.as_path()),
        ("newer", DOMAIN, newer.as_path()),
    ];
    table_for(&table, &[("old", &old)]);
    let mut exim = Exim::new(&dir.path().join("exim"), &table);

    let signed = exim.sign(MESSAGE);
    assert_eq!(
        exim::verify(&signed, &all),
        [sig("old", "rsa-sha256", true)]
    );
    assert!(signed.contains("Hello from rotor's Exim test."));

    table_for(&table, &[("new", &new)]);
    let signed = exim.sign(MESSAGE);
    assert_eq!(
        exim::verify(&signed, &all),
        [sig("new", "rsa-sha256", true)]
    );
    // The old key does not verify the new signature: it really is the new key.
    let wrong = [("new", DOMAIN, old.as_path())];
    assert_eq!(
        exim::verify(&signed, &wrong),
        [sig("new", "rsa-sha256", false)]
    );

    // One long-running daemon: the table is read per delivery, not at start.
    exim.start_daemon();
    let pid = exim.daemon_pid();
    let signed = exim.sign_via_daemon(MESSAGE);
    assert_eq!(
        exim::verify(&signed, &all),
        [sig("new", "rsa-sha256", true)]
    );
    table_for(&table, &[("newer", &newer)]);
    let signed = exim.sign_via_daemon(MESSAGE);
    assert_eq!(
        exim::verify(&signed, &all),
        [sig("newer", "rsa-sha256", true)]
    );
    assert_eq!(exim.daemon_pid(), pid);
    assert_eq!(exim.paniclog(), "");
}

/// b, d: a selector list signs twice, RSA then Ed25519, each verifying.
#[test]
fn dual_signing_rsa_and_ed25519() {
    let dir = scratch();
    let keys = key_dir(dir.path());
    let table = dir.path().join("dkim-table");
    let rsa = genkey(&keys.join("example.com.sel-rsa.pem"), "rsa");
    let ed = genkey(&keys.join("example.com.sel-ed.pem"), "ed25519");
    table_for(&table, &[("sel-rsa", &rsa), ("sel-ed", &ed)]);
    let exim = Exim::new(&dir.path().join("exim"), &table);

    let signed = exim.sign(MESSAGE);
    assert_eq!(exim::signature_headers(&signed).len(), 2, "{signed}");
    let keys = [
        ("sel-rsa", DOMAIN, rsa.as_path()),
        ("sel-ed", DOMAIN, ed.as_path()),
    ];
    let mut found = exim::verify(&signed, &keys);
    found.sort_by(|a, b| a.algorithm.cmp(&b.algorithm));
    assert_eq!(
        found,
        [
            sig("sel-ed", "ed25519-sha256", true),
            sig("sel-rsa", "rsa-sha256", true)
        ]
    );
    assert_eq!(exim.paniclog(), "");
}

/// b: the key files Debian's Exim (GnuTLS) takes: PEM only (RSA as PKCS#1 or PKCS#8, Ed25519 as
/// PKCS#8, what `openssl genpkey` writes). DER and the base64 Ed25519 seed that dkimpy and
/// rspamd use are refused: the message goes out without that signature, and the log says why.
/// In a selector list, one refused key drops every signature: the message goes out unsigned.
#[test]
fn key_formats() {
    let dir = scratch();
    let keys = key_dir(dir.path());
    let table = dir.path().join("dkim-table");
    let rsa = genkey(&keys.join("rsa-pkcs8.pem"), "rsa");
    let ed = genkey(&keys.join("ed-pkcs8.pem"), "ed25519");
    let k = |name: &str| keys.join(name).display().to_string();
    let (rsa_s, ed_s) = (rsa.display().to_string(), ed.display().to_string());
    sh(&format!(
        "openssl pkey -in '{rsa_s}' -traditional -out '{}'
         openssl pkey -in '{rsa_s}' -outform DER -out '{}'
         openssl pkey -in '{ed_s}' -outform DER -out '{}'
         openssl pkey -in '{ed_s}' -outform DER | tail -c 32 | base64 > '{}'
         (openssl pkey -in '{ed_s}' -outform DER | tail -c 32;
          openssl pkey -in '{ed_s}' -pubout -outform DER | tail -c 32) | base64 -w0 > '{}'",
        k("rsa-pkcs1.pem"),
        k("rsa.der"),
        k("ed.der"),
        k("ed-seed.b64"),
        k("ed-seed-public.b64"),
    ));
    let cases = [
        ("rsa-pkcs8.pem", "rsa-sha256", true),
        ("rsa-pkcs1.pem", "rsa-sha256", true),
        ("rsa.der", "rsa-sha256", false),
        ("ed-pkcs8.pem", "ed25519-sha256", true),
        ("ed.der", "ed25519-sha256", false),
        ("ed-seed.b64", "ed25519-sha256", false),
        ("ed-seed-public.b64", "ed25519-sha256", false),
    ];
    let exim = Exim::new(&dir.path().join("exim"), &table);
    for (file, algorithm, accepted) in cases {
        let key = keys.join(file);
        if file != "rsa-pkcs8.pem" && file != "ed-pkcs8.pem" {
            give_to_exim_group(&key, 0o640);
        }
        table_for(&table, &[("sel", &key)]);
        let log_before = exim.mainlog().unwrap_or_default().len();
        let signed = exim.sign(MESSAGE);
        let found = exim::verify(&signed, &[("sel", DOMAIN, key.as_path())]);
        let log = exim.mainlog().unwrap_or_default()[log_before..].to_string();
        if accepted {
            assert_eq!(found, [sig("sel", algorithm, true)], "{file}: {log}");
        } else {
            assert_eq!(found, [], "{file} should be refused");
            assert!(
                log.contains("signing_init: privkey PEM-block import")
                    && log.contains("DKIM: signing failed: PRIVKEY"),
                "{file}: {log}"
            );
            assert!(log.contains("=> rcpt@example.net"), "sent unsigned: {log}");
        }
    }

    // A refused key in a list costs every signature, the good key's too: the message goes
    // out unsigned. Listed either way round.
    let seed = keys.join("ed-seed.b64");
    let (rsa, seed) = (rsa.as_path(), seed.as_path());
    for list in [
        [("sel-rsa", rsa), ("sel-ed", seed)],
        [("sel-ed", seed), ("sel-rsa", rsa)],
    ] {
        table_for(&table, &list);
        let log_before = exim.mainlog().unwrap_or_default().len();
        let signed = exim.sign(MESSAGE);
        assert_eq!(exim::signature_headers(&signed), Vec::<String>::new());
        let log = exim.mainlog().unwrap_or_default()[log_before..].to_string();
        assert!(log.contains("DKIM: signing failed: PRIVKEY"), "{log}");
    }
}

/// c: keys root:Debian-exim 0640 in a root:Debian-exim 0750 directory sign. A key Debian-exim
/// cannot read (root:root 0600) is logged ("unable to open file for reading: PATH", main and
/// panic log) and the message goes out unsigned (with a readable key listed beside it too),
/// unless `dkim_strict = true`, which defers it (it stays queued until the key is readable).
#[test]
fn key_permissions() {
    let dir = scratch();
    let keys = key_dir(dir.path());
    let table = dir.path().join("dkim-table");
    let good = genkey(&keys.join("good.pem"), "rsa");
    let closed = genkey(&keys.join("closed.pem"), "rsa");
    std::os::unix::fs::chown(&closed, Some(0), Some(0)).unwrap();
    fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let exim = Exim::new(&dir.path().join("exim"), &table);
    table_for(&table, &[("good", &good)]);
    let signed = exim.sign(MESSAGE);
    let found = exim::verify(&signed, &[("good", DOMAIN, good.as_path())]);
    assert_eq!(found, [sig("good", "rsa-sha256", true)]);

    table_for(&table, &[("closed", &closed)]);
    let signed = exim.sign(MESSAGE);
    assert_eq!(exim::signature_headers(&signed), Vec::<String>::new());
    let complaint = format!("unable to open file for reading: {}", closed.display());
    assert!(exim.mainlog().unwrap().contains(&complaint));
    assert!(exim.paniclog().contains(&complaint), "{}", exim.paniclog());
    assert_eq!(exim.queued(), 0);

    // Listed with a good key, an unreadable one still costs both signatures.
    table_for(&table, &[("good", &good), ("closed", &closed)]);
    let signed = exim.sign(MESSAGE);
    assert_eq!(exim::signature_headers(&signed), Vec::<String>::new());

    table_for(&table, &[("closed", &closed)]);
    let strict = Exim::with_options(&dir.path().join("strict"), &table, "  dkim_strict = true\n");
    assert_eq!(strict.try_sign(SENDER, MESSAGE), None, "deferred, not sent");
    assert_eq!(strict.queued(), 1);
    let log = strict.mainlog().unwrap();
    assert!(log.contains(&complaint), "{log}");
    assert!(
        log.contains(
            "DKIM: message could not be signed, and dkim_strict is set. Deferring message delivery."
        ),
        "{log}"
    );
    assert!(
        log.contains("== rcpt@example.net R=everything T=dkim_smtp defer"),
        "{log}"
    );

    // Once the key is readable, the queued message goes out signed (a queue run).
    give_to_exim_group(&closed, 0o640);
    let status = Command::new(exim::binary())
        .arg("-C")
        .arg(strict.conf())
        .arg("-qff")
        .status()
        .unwrap();
    assert!(status.success());
    rotor_testkit::wait_for("the queue run", std::time::Duration::from_secs(30), || {
        strict.received().len() == 1
    });
    let signed = fs::read_to_string(&strict.received()[0]).unwrap();
    let found = exim::verify(&signed, &[("closed", DOMAIN, closed.as_path())]);
    assert_eq!(found, [sig("closed", "rsa-sha256", true)]);
}

/// What the table's shape means: a domain without a row, and a listed selector without a key
/// row, are skipped silently (no log line, not even with `dkim_strict`): rotor must write a
/// selector's key row in the same file as the list naming it.
#[test]
fn rows_missing_from_the_table() {
    let dir = scratch();
    let keys = key_dir(dir.path());
    let table = dir.path().join("dkim-table");
    let rsa = genkey(&keys.join("rsa.pem"), "rsa");
    let exim = Exim::with_options(&dir.path().join("exim"), &table, "  dkim_strict = true\n");
    table_for(&table, &[("sel", &rsa)]);

    let other = exim.try_sign("someone@example.org", MESSAGE).unwrap();
    assert_eq!(exim::signature_headers(&other), Vec::<String>::new());

    let rsa_s = rsa.display().to_string();
    write_table(
        &table,
        &[
            (DOMAIN, "sel : unlisted"),
            ("sel._domainkey.example.com", rsa_s.as_str()),
        ],
    );
    let signed = exim.sign(MESSAGE);
    let found = exim::verify(&signed, &[("sel", DOMAIN, rsa.as_path())]);
    assert_eq!(found, [sig("sel", "rsa-sha256", true)]);
    let log = exim.mainlog().unwrap();
    assert!(!log.contains("DKIM"), "{log}");
    assert_eq!(exim.paniclog(), "");
}
