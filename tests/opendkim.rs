//! A real OpenDKIM, reloaded by rotor with SIGUSR1: after each swap, a probe message sent through
//! the milter (miltertest) is signed with the new selector, and the signature verifies (dkimpy)
//! against the record on the secondary nameserver.

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Bind, Rotor, Secondary, Setup, free_port, scratch, wait_for};

struct Opendkim(Child);

impl Drop for Opendkim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_opendkim(rotor: &Rotor, port: u16) -> (Opendkim, std::path::PathBuf) {
    let dir = rotor.signer_dir();
    let pid_file = dir.join("opendkim.pid");
    let conf = dir.join("opendkim.conf");
    fs::write(
        &conf,
        format!(
            "Syslog no\nSocket inet:{port}@127.0.0.1\nPidFile {pid}\nMode s\nCanonicalization relaxed/simple\n\
             KeyTable file:{dir}/KeyTable\nSigningTable refile:{dir}/SigningTable\nUMask 007\n",
            pid = pid_file.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/opendkim")
        .args(["-f", "-x"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("opendkim is installed (apt-get install opendkim; tests/run.sh does)");
    wait_for("opendkim's pid file", Duration::from_secs(20), || {
        pid_file.exists()
    });
    (Opendkim(child), pid_file)
}

/// The DKIM-Signature OpenDKIM adds to the probe, or `None` if it does not sign.
fn probe(port: u16) -> Option<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/probe.lua");
    let out = Command::new("miltertest")
        .arg("-D")
        .arg(format!("port={port}"))
        .arg("-s")
        .arg(script)
        .output()
        .expect("miltertest is installed (apt-get install miltertest; tests/run.sh does)");
    assert!(
        out.status.success(),
        "miltertest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (text != "unsigned").then_some(text)
}

fn tag(signature: &str, name: &str) -> String {
    signature
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn verifies(signature: &str, dns_port: u16) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify_signed.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(dns_port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signature.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.success().then_some(()).ok_or_else(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Waits until OpenDKIM (reloading asynchronously after SIGUSR1) signs with `selector`.
fn signs_with(milter: u16, selector: &str) -> String {
    let mut last = None;
    wait_for(
        &format!("OpenDKIM to sign with {selector}"),
        Duration::from_secs(20),
        || {
            last = probe(milter);
            last.as_deref().is_some_and(|s| tag(s, "s") == selector)
        },
    );
    last.unwrap()
}

#[test]
fn opendkim_signs_with_each_new_key_and_the_signature_verifies() {
    let dir = scratch();
    let bind = Bind::start(&dir.path().join("bind"), Secondary::Notified);
    let rotor = Rotor::new(dir.path(), &bind, Setup::default());
    let milter = free_port();
    let (_opendkim, pid_file) = start_opendkim(&rotor, milter);
    let config = fs::read_to_string(&rotor.config).unwrap();
    let reload_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("reload:"))
        .unwrap();
    fs::write(
        &rotor.config,
        config.replace(
            reload_line,
            &format!("    pid_file: {}", pid_file.display()),
        ),
    )
    .unwrap();
    assert!(
        rotor.cmd(&["check"]).status.success(),
        "{}",
        String::from_utf8_lossy(&rotor.cmd(&["check"]).stdout)
    );

    assert_eq!(
        probe(milter),
        None,
        "nothing signs example.com before rotor"
    );
    rotor.run_until("first key active", |r| r.selector_in("active").is_some());
    let first = rotor.selector_in("active").unwrap();
    let in_flight = signs_with(milter, &first);
    assert_eq!(tag(&in_flight, "d"), "example.com");
    assert_eq!(tag(&in_flight, "a"), "rsa-sha256");
    verifies(&in_flight, bind.secondary.port).unwrap();

    rotor.ok(&["rotate", "example.com"]);
    rotor.run_until("second key active", |r| {
        r.selector_in("active").is_some_and(|s| s != first)
    });
    let second = rotor.selector_in("active").unwrap();
    let signature = signs_with(milter, &second);
    verifies(&signature, bind.secondary.port).unwrap();
    // Mail signed with the old key before the swap still verifies during the grace window…
    verifies(&in_flight, bind.secondary.port).unwrap();
    // …and no longer once the old key is retired.
    rotor.run_until("old key retired", |r| r.phases()[0].1 == "retired");
    wait_for(
        "the old record to leave the secondary",
        Duration::from_secs(20),
        || {
            bind.secondary
                .txt(&format!("{first}._domainkey.example.com"))
                .is_empty()
        },
    );
    assert!(verifies(&in_flight, bind.secondary.port).is_err());
    assert_eq!(
        tag(&probe(milter).unwrap(), "s"),
        second,
        "still signing with the active key"
    );
}
