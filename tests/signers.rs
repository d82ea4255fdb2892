//! Several real signers per domain, and RSA + Ed25519 together, through the real binary against
//! BIND: after each rotation, a probe message signed by each real signer carries the new
//! selector(s), and every signature verifies (dkimpy) against the records BIND serves.
//!
//! - OpenDKIM (milter, probed with miltertest) and rspamd (its selector map) sign example.com
//!   with RSA;
//! - rspamd (its domains file, reloaded with SIGHUP) and Exim (its lsearch table, read per
//!   delivery) sign example.com with RSA and Ed25519 at once.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rotor_testkit::exim::{self, Exim};
use rotor_testkit::rspamd::Rspamd;
use support::opendkim::{signs_with, start_opendkim, verifies};
use support::{Bind, Rotor, Secondary, Setup, dns_verdicts, scratch, wait_for};

const PROBE: &str = "From: probe@example.com\nTo: someone@example.net\nSubject: rotor probe\nDate: Mon, 30 Nov 2026 12:00:00 +0000\nMessage-ID: <probe@rotor>\n\nHello.\n";

/// Replaces the generated config's signers and domains.
fn set_signers(rotor: &Rotor, signers: &str, domain: &str) {
    let config = fs::read_to_string(&rotor.config).unwrap();
    let (head, _) = config.split_once("signers:\n").unwrap();
    fs::write(
        &rotor.config,
        format!("{head}signers:\n{signers}domains:\n{domain}"),
    )
    .unwrap();
}

/// A key directory only its owner may enter.
fn private_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
}

/// The selectors of the active keys, RSA first.
fn active(rotor: &Rotor) -> Vec<String> {
    let mut rows: Vec<(String, String)> = rotor
        .status()
        .iter()
        .filter(|row| row["phase"] == "active")
        .map(|row| {
            (
                row["algorithm"].as_str().unwrap().to_string(),
                row["selector"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort_by_key(|(algorithm, _)| !algorithm.starts_with("rsa"));
    rows.into_iter().map(|(_, selector)| selector).collect()
}

/// Waits until `sign` gives a message whose signatures are exactly `selectors` (in any order),
/// each verifying against BIND's secondary; returns it.
fn signed_with(
    what: &str,
    selectors: &[String],
    dns_port: u16,
    mut sign: impl FnMut() -> Option<String>,
) -> String {
    let mut want = selectors.to_vec();
    want.sort();
    let mut last = (String::new(), Vec::new());
    wait_for(
        &format!("{what} to sign with {selectors:?}"),
        Duration::from_secs(30),
        || {
            let Some(message) = sign() else {
                return false;
            };
            let verdicts = dns_verdicts(&message, dns_port);
            let mut seen: Vec<String> = verdicts.iter().map(|(s, ..)| s.clone()).collect();
            seen.sort();
            let done = seen == want && verdicts.iter().all(|(.., ok)| *ok);
            last = (message, verdicts);
            done
        },
    );
    last.0
}

fn algorithms(message: &str, dns_port: u16) -> Vec<String> {
    let mut found: Vec<String> = dns_verdicts(message, dns_port)
        .into_iter()
        .map(|(_, algorithm, _)| algorithm)
        .collect();
    found.sort();
    found
}

#[test]
fn opendkim_and_rspamd_switch_together() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let opendkim = start_opendkim(&rotor);
    let pid_file = &opendkim.pid_file;
    let milter = opendkim.port;
    let rs = dir.path().join("rspamd-files");
    private_dir(&rs.join("keys"));
    let rspamd = Rspamd::start(
        &dir.path().join("rspamd"),
        &format!(
            "path = \"{k}/$domain.$selector.key\";\nselector_map = \"{m}\";\n",
            k = rs.join("keys").display(),
            m = rs.join("selectors.map").display()
        ),
    );
    let signer = rotor.signer_dir();
    set_signers(
        &rotor,
        &format!(
            "  mx1:
    type: opendkim
    key_table: {s}/KeyTable
    signing_table: {s}/SigningTable
    key_dir: {s}/keys
    pid_file: {pid}
    probe:
      milter: inet:{milter}@127.0.0.1
      wait: 20s
  rspamd:
    type: rspamd
    key_dir: {rs}/keys
    selector_map: {rs}/selectors.map
    probe:
      rspamd: http://127.0.0.1:{rspamd_port}
      wait: 30s
",
            s = signer.display(),
            pid = pid_file.display(),
            rs = rs.display(),
            rspamd_port = rspamd.port,
        ),
        "  - name: example.com\n    provider: bind\n    signers: [mx1, rspamd]\n",
    );
    let check = rotor.cmd(&["check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");

    let mut previous = None;
    for rotation in 0..2 {
        if rotation > 0 {
            rotor.ok(&["rotate", "example.com"]);
        }
        rotor.run_until("a new key active", |r| {
            let now = active(r);
            now.len() == 1 && Some(&now[0]) != previous.as_ref()
        });
        let selector = active(&rotor).remove(0);
        // OpenDKIM (after its SIGUSR1) and rspamd (after its map changed) both sign with it.
        let milter_signature = signs_with(&opendkim, &selector);
        verifies(&milter_signature, bind.secondary.port).unwrap();
        signed_with(
            "rspamd",
            std::slice::from_ref(&selector),
            bind.secondary.port,
            || rspamd.try_sign(PROBE).ok(),
        );
        let row = rotor
            .status()
            .into_iter()
            .find(|row| row["selector"] == selector.as_str())
            .unwrap();
        assert_eq!(row["signers"]["mx1"], "signing");
        assert_eq!(row["signers"]["rspamd"], "signing");
        // rotor proved each switch itself: both signed its probe with the new key.
        for signer in ["mx1", "rspamd"] {
            let probe = &row["probes"][signer];
            assert_eq!(probe["ok"], true, "{signer}: {probe}");
        }
        previous = Some(selector);
    }
}

#[test]
fn rsa_and_ed25519_on_rspamd_and_exim() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    // rspamd signs twice through the domains file rotor writes, included by its config.
    let rs = dir.path().join("rspamd-files");
    private_dir(&rs.join("keys"));
    let domains = rs.join("rotor_domains.inc");
    fs::write(&domains, "").unwrap();
    let rspamd = Rspamd::start(
        &dir.path().join("rspamd"),
        &format!(
            "path = \"{k}/$domain.$selector.key\";\nselector_map = \"{m}\";\n.include \"{d}\"\n",
            k = rs.join("keys").display(),
            m = rs.join("selectors.map").display(),
            d = domains.display()
        ),
    );
    // Exim reads its keys as Debian-exim: a 0750 root:Debian-exim key directory.
    let ex = dir.path().join("exim-files");
    fs::create_dir_all(ex.join("keys")).unwrap();
    exim::give_to_exim_group(&ex, 0o750);
    exim::give_to_exim_group(&ex.join("keys"), 0o750);
    let table = ex.join("rotor-dkim");
    let exim = Exim::new(&dir.path().join("exim"), &table);
    set_signers(
        &rotor,
        &format!(
            "  rspamd:
    type: rspamd
    key_dir: {rs}/keys
    selector_map: {rs}/selectors.map
    domains_file: {domains}
    reload: \"kill -HUP {pid}\"
    probe:
      rspamd: http://127.0.0.1:{rspamd_port}
      wait: 30s
  exim:
    type: exim
    table: {table}
    key_dir: {ex}/keys
    group: {group}
    probe:
      command: \"EXIM={exim_bin} EXIM_ARGS='-C {exim_conf}' {script} {sink}\"
      wait: 20s
",
            rs = rs.display(),
            domains = domains.display(),
            pid = rspamd.pid(),
            rspamd_port = rspamd.port,
            exim_bin = exim::binary().display(),
            exim_conf = exim.conf().display(),
            script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/probe/mta-probe.sh")
                .display(),
            sink = exim.sink_dir().display(),
            table = table.display(),
            ex = ex.display(),
            group = exim::EXIM_USER,
        ),
        "  - name: example.com\n    provider: bind\n    signers: [rspamd, exim]\n    keys: [rsa-2048, ed25519]\n",
    );
    let check = rotor.cmd(&["check"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");

    let mut previous: Vec<String> = Vec::new();
    for rotation in 0..2 {
        if rotation > 0 {
            rotor.ok(&["rotate", "example.com"]);
        }
        rotor.run_until("two new keys active", |r| {
            let now = active(r);
            now.len() == 2 && now.iter().all(|s| !previous.contains(s))
        });
        let selectors = active(&rotor);
        // Both switches were proven by rotor's own probe (dual signatures, each verified).
        for selector in &selectors {
            let row = rotor
                .status()
                .into_iter()
                .find(|row| row["selector"] == selector.as_str())
                .unwrap();
            for signer in ["rspamd", "exim"] {
                let probe = &row["probes"][signer];
                assert_eq!(probe["ok"], true, "{signer} {selector}: {probe}");
            }
        }
        let by_rspamd = signed_with("rspamd", &selectors, bind.secondary.port, || {
            rspamd.try_sign(PROBE).ok()
        });
        assert_eq!(
            algorithms(&by_rspamd, bind.secondary.port),
            ["ed25519-sha256", "rsa-sha256"]
        );
        let by_exim = signed_with("Exim", &selectors, bind.secondary.port, || {
            exim.try_sign(exim::SENDER, PROBE)
        });
        assert_eq!(
            algorithms(&by_exim, bind.secondary.port),
            ["ed25519-sha256", "rsa-sha256"]
        );
        // Exim's keys: 0640, group Debian-exim; rspamd's Ed25519 key: its base64 seed.
        let ed = &selectors[1];
        let exim_key = ex.join(format!("keys/example.com.{ed}.pem"));
        let meta = fs::metadata(&exim_key).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(
            std::os::unix::fs::MetadataExt::gid(&meta),
            exim::user_ids(exim::EXIM_USER).1
        );
        let seed = fs::read_to_string(rs.join(format!("keys/example.com.{ed}.key"))).unwrap();
        assert_eq!(seed.trim().len(), 44);
        previous = selectors;
    }
    // The replaced keys' files are gone once they are retired.
    rotor.run_until("old keys retired", |r| {
        r.phases().iter().filter(|(_, p)| p == "retired").count() == 2
    });
    let leftover: Vec<_> = fs::read_dir(ex.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftover.len(), 2, "{leftover:?}");
    assert!(Path::new(&table).exists());
}

/// A `type: files` signer whose probe is signed by dkimpy with the key file its conf names
/// (`planted`: with that key instead, as a signer whose key is not the published one would).
fn files_signer(rotor: &Rotor, planted: Option<&Path>) {
    let d = rotor.dir.join("files-signer");
    private_dir(&d.join("keys"));
    fs::create_dir_all(d.join("conf")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sign_probe.py");
    let planted = planted
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default();
    set_signers(
        rotor,
        &format!(
            "  files1:
    type: files
    key_dir: {d}/keys
    files:
      - path: \"{d}/conf/{{{{ domain }}}}.conf\"
        template: |
          {{% for key in keys %}}
          sign {{{{ domain }}}} {{{{ key.selector }}}} {{{{ key.key_path }}}}
          {{% endfor %}}
    probe:
      command: \"python3 {script} {d}/conf{planted}\"
      wait: 1s
",
            d = d.display(),
            script = script.display(),
        ),
        "  - name: example.com\n    provider: bind\n    signers: [files1]\n",
    );
}

#[test]
fn a_probe_signed_with_a_key_that_is_not_the_published_one_fails_and_says_why() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    files_signer(&rotor, None);
    rotor.ok(&["check"]);
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let row = rotor
        .status()
        .into_iter()
        .find(|row| row["selector"] == first.as_str())
        .unwrap();
    assert_eq!(row["probes"]["files1"]["ok"], true, "{row}");

    // The signer now signs with a key of its own under the new selector.
    let planted = dir.path().join("planted.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&planted)
        .output()
        .unwrap();
    assert!(made.status.success());
    files_signer(&rotor, Some(&planted));
    rotor.ok(&["rotate", "example.com"]);
    let out = rotor.run_until_it_fails("the switch to be tried");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let second = rotor.selector_in("propagated").expect("the new key waits");
    assert!(
        stderr.contains(&format!(
            "signature s={second} does not verify against the published record"
        )),
        "{stderr}"
    );
    assert_eq!(rotor.selector_in("active").as_deref(), Some(first.as_str()));
    // Switched back: the signer's conf names the first key again.
    let conf = fs::read_to_string(rotor.dir.join("files-signer/conf/example.com.conf")).unwrap();
    assert!(conf.contains(&format!(" {first} ")), "{conf}");
    assert!(!conf.contains(&second), "{conf}");
    // The active key's own re-probe caught the same signer: status warns of both.
    let status = rotor.cmd(&["status"]);
    let warnings = String::from_utf8_lossy(&status.stderr);
    assert!(
        warnings.contains(&format!(
            "example.com {first}: signer files1's probe failed"
        )),
        "{warnings}"
    );
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("files1:probe-failed"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// The probe script's SMTP submission (KumoMTA's way) and the copy found by its Message-ID,
/// with Exim's daemon standing in for KumoMTA's listener: Debian has no KumoMTA.
#[test]
fn the_smtp_probe_script_submits_the_probe_and_prints_the_copy_it_finds() {
    let dir = scratch();
    let table = dir.path().join("exim-files/rotor-dkim");
    fs::create_dir_all(table.parent().unwrap()).unwrap();
    exim::give_to_exim_group(table.parent().unwrap(), 0o750);
    fs::write(&table, "").unwrap();
    exim::give_to_exim_group(&table, 0o640);
    let mut exim = Exim::new(&dir.path().join("exim"), &table);
    exim.start_daemon();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/probe/mta-probe.sh");
    let message = "From: <rotor-probe@example.com>\r\nTo: <rotor-probe@example.com>\r\nSubject: rotor signing probe t1\r\nMessage-ID: <t1.42@example.com>\r\n\r\nprobe\r\n";
    let mut child = std::process::Command::new("sh")
        .arg(&script)
        .arg(exim.sink_dir())
        .env("PROBE_SMTP", format!("127.0.0.1:{}", exim.daemon_port))
        .env("ROTOR_PROBE_SENDER", exim::SENDER)
        .env("PROBE_RECIPIENT", exim::RECIPIENT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("Message-ID: <t1.42@example.com>"),
        "{printed}"
    );
    assert!(
        exim.received().is_empty(),
        "the copy is taken out of the directory"
    );
}
