//! The real OpenDKIM, in the foreground on a loopback milter port, reloaded by the adapter with
//! SIGUSR1 through its pid file; probed with `miltertest`, its signatures checked by dkimpy.
//! OpenDKIM runs as root here and refuses a key file another user owns (`RequireSafeKeys`), so
//! the key files' second id is their group.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_signers::SignerKey;
use rotor_testkit::{Running, free_port, wait_for};

use super::{Backend, NOGROUP, private_dir, signed_by, write_owned};

/// A running OpenDKIM and the files it reads.
pub struct Opendkim {
    dir: PathBuf,
    port: u16,
    _daemon: Running,
}

/// Starts OpenDKIM on tables under `dir`, with rows of another domain in them.
pub fn start(dir: &Path) -> Opendkim {
    let dir = dir.join("opendkim");
    private_dir(&dir.join("keys"));
    let tables = (0, NOGROUP.1);
    write_owned(
        &dir.join("KeyTable"),
        "# the operator's rows\nold._domainkey.other.test other.test:old:/etc/dkimkeys/other.test.pem\n",
        tables,
        0o640,
    );
    write_owned(
        &dir.join("SigningTable"),
        "# the operator's rows\n*@other.test old._domainkey.other.test\n",
        tables,
        0o640,
    );
    let port = free_port();
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
    let daemon = Running(child);
    wait_for("opendkim's pid file", Duration::from_secs(20), || {
        pid_file.exists()
    });
    Opendkim {
        dir,
        port,
        _daemon: daemon,
    }
}

impl Opendkim {
    /// The DKIM-Signature OpenDKIM adds to the probe of `domain`, or `None`.
    fn probe(&self, domain: &str) -> Result<Option<String>, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/probe.lua");
        let out = Command::new("miltertest")
            .arg("-D")
            .arg(format!("port={}", self.port))
            .arg("-D")
            .arg(format!("domain={domain}"))
            .arg("-s")
            .arg(script)
            .output()
            .expect("miltertest is installed (apt-get install miltertest; tests/run.sh does)");
        if !out.status.success() {
            return Err(format!(
                "miltertest: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((text != "unsigned").then_some(text))
    }
}

impl Backend for Opendkim {
    fn settings(&self, failing: bool) -> String {
        let d = self.dir.display();
        let verify = if failing {
            "verify: \"echo no signature >&2; exit 1\"\n"
        } else {
            ""
        };
        format!(
            "type: opendkim\nkey_table: {d}/KeyTable\nsigning_table: {d}/SigningTable\nkey_dir: {d}/keys\npid_file: {d}/opendkim.pid\ngroup: {}\n{verify}",
            NOGROUP.0
        )
    }

    fn tables(&self, _: &str) -> Vec<PathBuf> {
        vec![self.dir.join("KeyTable"), self.dir.join("SigningTable")]
    }

    fn operator_files(&self) -> Vec<PathBuf> {
        self.tables("")
    }

    fn key_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn key_owner(&self) -> (u32, u32, u32) {
        (0, NOGROUP.1, 0o600)
    }

    fn table_group(&self) -> u32 {
        NOGROUP.1
    }

    fn signs(&self, domain: &str, key: &SignerKey) -> Result<(), String> {
        let signature = self
            .probe(domain)?
            .ok_or_else(|| format!("{domain} is not signed"))?;
        let message = format!(
            "DKIM-Signature: {}\r\nFrom: probe@{domain}\r\nTo: someone@example.net\r\nSubject: rotor probe\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\nHello.\r\n",
            signature.trim()
        );
        signed_by(&message, domain, key)
    }
}
