//! The real OpenDKIM, in the foreground on a loopback milter port, reloaded by the adapter with
//! SIGUSR1 through its pid file; probed with `miltertest`, its signatures checked by dkimpy.
//! OpenDKIM runs as root here and refuses a key file another user owns (`RequireSafeKeys`), so
//! the key files' second id is their group.

use std::path::{Path, PathBuf};

use rotor_signers::SignerKey;
use rotor_testkit::opendkim::{self, probe_message};

use super::{Backend, NOGROUP, private_dir, signed_by, write_owned};

/// A running OpenDKIM and the files it reads.
pub struct Opendkim {
    dir: PathBuf,
    daemon: opendkim::Opendkim,
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
    let daemon = opendkim::Opendkim::start(&dir);
    Opendkim { dir, daemon }
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
            .daemon
            .probe(domain)?
            .ok_or_else(|| format!("{domain} is not signed"))?;
        signed_by(&probe_message(domain, &signature), domain, key)
    }
}
