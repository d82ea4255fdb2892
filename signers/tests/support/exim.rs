//! The real Exim (`rotor_testkit::exim`), signing every delivery from the lsearch table the
//! adapter writes (read per delivery, no reload); checked on the message its SMTP sink received.

use std::path::{Path, PathBuf};

use rotor_signers::SignerKey;
use rotor_testkit::exim::{self, EXIM_USER, Exim as Daemon};

use super::{Backend, probe_message, signed_by, write_owned};

/// Exim, its sink, and the files it reads.
pub struct Exim {
    files: PathBuf,
    daemon: Daemon,
}

/// An Exim under `dir` whose table holds another domain's rows; keys and table readable by
/// Debian-exim through its group.
pub fn start(dir: &Path) -> Exim {
    let files = dir.join("exim-files");
    std::fs::create_dir_all(files.join("keys")).unwrap();
    exim::give_to_exim_group(&files, 0o750);
    exim::give_to_exim_group(&files.join("keys"), 0o750);
    let table = files.join("rotor-dkim");
    write_owned(
        &table,
        "# the operator's rows\nother.test: s\ns._domainkey.other.test: /etc/exim4/dkim/other.test.pem\n",
        (0, group()),
        0o640,
    );
    let daemon = Daemon::new(&dir.join("exim"), &table);
    Exim { files, daemon }
}

/// Debian-exim's group.
fn group() -> u32 {
    exim::user_ids(EXIM_USER).1
}

impl Backend for Exim {
    fn settings(&self, failing: bool) -> String {
        let f = self.files.display();
        let reload = if failing {
            "reload: \"echo refused >&2; exit 1\"\n"
        } else {
            ""
        };
        format!(
            "type: exim\ntable: {f}/rotor-dkim\nkey_dir: {f}/keys\ngroup: {EXIM_USER}\n{reload}"
        )
    }

    fn tables(&self, _: &str) -> Vec<PathBuf> {
        vec![self.files.join("rotor-dkim")]
    }

    fn operator_files(&self) -> Vec<PathBuf> {
        self.tables("")
    }

    fn key_dir(&self) -> PathBuf {
        self.files.join("keys")
    }

    fn key_owner(&self) -> (u32, u32, u32) {
        (0, group(), 0o640)
    }

    fn table_group(&self) -> u32 {
        group()
    }

    fn signs(&self, domain: &str, key: &SignerKey) -> Result<(), String> {
        let message = self
            .daemon
            .try_sign(&format!("sender@{domain}"), &probe_message(domain))
            .ok_or_else(|| format!("Exim kept the message of {domain} queued"))?;
        signed_by(&message, domain, key)
    }
}
