//! A real OpenDKIM on loopback: in the foreground, signing on a milter port on 127.0.0.1 with the
//! `KeyTable` and `SigningTable` of a directory (its config and pid file written there too, the
//! pid file for SIGUSR1 reloads); probed with `miltertest` and the probe script
//! (`scripts/probe.lua`, written to a scratch directory). Stopped when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Running, free_port, wait_for};

/// The `miltertest` script that sends one message from `probe@DOMAIN` through the milter at
/// `inet:PORT@127.0.0.1` and prints the DKIM-Signature header it adds, or `unsigned`.
const PROBE_LUA: &str = include_str!("../scripts/probe.lua");

/// One `opendkim`, killed when dropped.
pub struct Opendkim {
    _child: Running,
    /// Its milter port on 127.0.0.1.
    pub port: u16,
    /// Its pid file (a `pid_file:` for rotor's SIGUSR1 reloads).
    pub pid_file: PathBuf,
    /// Holds `probe.lua`.
    probe_dir: tempfile::TempDir,
}

impl Opendkim {
    /// Starts OpenDKIM on the `KeyTable` and `SigningTable` in `dir`, on a free milter port, and
    /// waits for its pid file.
    pub fn start(dir: &Path) -> Self {
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
        let child = Running(child);
        wait_for("opendkim's pid file", Duration::from_secs(20), || {
            pid_file.exists()
        });
        let probe_dir = tempfile::tempdir().unwrap();
        fs::write(probe_dir.path().join("probe.lua"), PROBE_LUA).unwrap();
        Self {
            _child: child,
            port,
            pid_file,
            probe_dir,
        }
    }

    /// The DKIM-Signature OpenDKIM adds to the probe from `probe@domain` (see
    /// [`probe_message`]), or `None` if it does not sign; `Err` if `miltertest` fails.
    pub fn probe(&self, domain: &str) -> Result<Option<String>, String> {
        let out = Command::new("miltertest")
            .arg("-D")
            .arg(format!("port={}", self.port))
            .arg("-D")
            .arg(format!("domain={domain}"))
            .arg("-s")
            .arg(self.probe_dir.path().join("probe.lua"))
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

/// The message the probe from `probe@domain` sends, with `signature` (what [`Opendkim::probe`]
/// returned) as its DKIM-Signature header: what a receiver verifies.
pub fn probe_message(domain: &str, signature: &str) -> String {
    format!(
        "DKIM-Signature: {}\r\nFrom: probe@{domain}\r\nTo: someone@example.net\r\nSubject: rotor probe\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\nHello.\r\n",
        signature.trim()
    )
}
