//! A real OpenDKIM for the tests: started in the foreground on a loopback milter port with the
//! tables rotor writes, probed with `miltertest`, its signatures checked by dkimpy against DNS.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Rotor, dns_verdicts, wait_for};

/// A running OpenDKIM, killed when dropped.
pub struct Opendkim(Child);

impl Drop for Opendkim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts OpenDKIM on the tables of `rotor`'s signer, milter on 127.0.0.1:`port`; returns it and
/// its pid file (for SIGUSR1 reloads).
pub fn start_opendkim(rotor: &Rotor, port: u16) -> (Opendkim, PathBuf) {
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
pub fn probe(port: u16) -> Option<String> {
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

/// The value of tag `name` in a DKIM-Signature.
pub fn tag(signature: &str, name: &str) -> String {
    signature
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The message `probe.lua` sends, which OpenDKIM's signature covers.
const PROBE: &str = "From: probe@example.com\r\nTo: someone@example.net\r\nSubject: rotor probe\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\nHello.\r\n";

/// Whether the probe's signature verifies against the records served on 127.0.0.1:`dns_port`.
pub fn verifies(signature: &str, dns_port: u16) -> Result<(), String> {
    let message = format!("DKIM-Signature: {}\r\n{PROBE}", signature.trim());
    let verdicts = dns_verdicts(&message, dns_port);
    match verdicts.as_slice() {
        [(_, _, true)] => Ok(()),
        _ => Err(format!("the signature does not verify: {verdicts:?}")),
    }
}

/// Waits until OpenDKIM (reloading asynchronously after SIGUSR1) signs with `selector`.
pub fn signs_with(milter: u16, selector: &str) -> String {
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
