//! The real rspamd (`rotor_testkit::rspamd`), signing through the selector map the adapter
//! writes (re-read by rspamd itself when it changes); checked with its `/checkv2` signatures.

use std::path::{Path, PathBuf};

use rotor_signers::SignerKey;
use rotor_testkit::rspamd::Rspamd as Daemon;

use super::{Backend, NOBODY, NOGROUP, private_dir, probe_message, signed_by, write_owned};

/// A running rspamd and the files it reads.
pub struct Rspamd {
    files: PathBuf,
    daemon: Daemon,
}

/// Starts rspamd with a selector map under `dir` that holds another domain's row.
pub fn start(dir: &Path) -> Rspamd {
    let files = dir.join("rspamd-files");
    private_dir(&files.join("keys"));
    let map = files.join("selectors.map");
    write_owned(
        &map,
        "# the operator's rows\nother.test sel\n",
        (0, NOGROUP.1),
        0o640,
    );
    let daemon = Daemon::start(
        &dir.join("rspamd"),
        &format!(
            "path = \"{}/$domain.$selector.key\";\nselector_map = \"{}\";\n",
            files.join("keys").display(),
            map.display()
        ),
    );
    Rspamd { files, daemon }
}

impl Backend for Rspamd {
    fn settings(&self, failing: bool) -> String {
        let f = self.files.display();
        let configtest = if failing {
            "configtest: \"echo syntax BAD >&2; exit 1\"\n"
        } else {
            ""
        };
        format!(
            "type: rspamd\nkey_dir: {f}/keys\nselector_map: {f}/selectors.map\nuser: {}\ngroup: {}\n{configtest}",
            NOBODY.0, NOGROUP.0
        )
    }

    fn tables(&self, _: &str) -> Vec<PathBuf> {
        vec![self.files.join("selectors.map")]
    }

    fn operator_files(&self) -> Vec<PathBuf> {
        self.tables("")
    }

    fn key_dir(&self) -> PathBuf {
        self.files.join("keys")
    }

    fn key_owner(&self) -> (u32, u32, u32) {
        (NOBODY.1, NOGROUP.1, 0o600)
    }

    fn table_group(&self) -> u32 {
        NOGROUP.1
    }

    fn signs(&self, domain: &str, key: &SignerKey) -> Result<(), String> {
        let message = self.daemon.try_sign(&probe_message(domain))?;
        signed_by(&message, domain, key)
    }
}
