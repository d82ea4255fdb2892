//! OpenDKIM in multi-key mode: `KeyTable` and `SigningTable` files, keys in a 0700 directory,
//! reloaded by a command or SIGUSR1.
//!
//! Only the lines of the domain being changed are touched: its `*@domain` signing rows and the
//! KeyTable rows of rotor's selectors. Everything else in the tables stays as the operator wrote it.
//! With `overlap: true` (and `MultipleSignatures yes` in opendkim.conf), a replaced key keeps its
//! signing row through its grace window, so mail is signed with the old and the new key.

mod settings;

pub use settings::OpendkimSettings;

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Result, SignerError};
use crate::key_files::{KeyFiles, KeyFormat};
use crate::probe::ProbeSettings;
use crate::tables::{FileSet, check_writable, rewrite};
use crate::{Signer, SignerKey, SignerPlan, command, fs as fsutil, selector_name};

/// The OpenDKIM adapter.
pub struct Opendkim {
    config: OpendkimSettings,
    keys: KeyFiles,
}

impl Opendkim {
    /// An adapter for the OpenDKIM in `config`.
    pub fn new(config: OpendkimSettings) -> Self {
        let keys = KeyFiles::new(
            config.key_dir.clone(),
            config.ownership(),
            0o600,
            "pem",
            KeyFormat::Pem,
        );
        Self { config, keys }
    }

    /// The KeyTable and SigningTable with the rows of every domain of `plans` replaced: one
    /// pass over each table, however many domains switch.
    fn tables(&self, plans: &[SignerPlan], key_table: &str, signing_table: &str) -> [String; 2] {
        let ours: HashSet<String> = plans
            .iter()
            .flat_map(|plan| {
                plan.installed()
                    .chain(&plan.removed)
                    .map(|key| selector_name(&key.selector, &plan.domain))
            })
            .collect();
        let patterns: HashSet<String> = plans
            .iter()
            .map(|plan| format!("*@{}", plan.domain))
            .collect();
        let mut key_rows = Vec::new();
        let mut signing_rows = Vec::new();
        for plan in plans {
            let domain = plan.domain.as_str();
            key_rows.extend(plan.installed().map(|key| {
                format!(
                    "{} {domain}:{}:{}",
                    selector_name(&key.selector, domain),
                    key.selector,
                    self.keys.path(domain, key).display()
                )
            }));
            let signing_keys: Vec<&SignerKey> = if self.config.overlap {
                plan.installed().collect()
            } else {
                plan.signing.iter().collect()
            };
            signing_rows.extend(
                signing_keys
                    .iter()
                    .map(|key| format!("*@{domain} {}", selector_name(&key.selector, domain))),
            );
        }
        let keys = rewrite(key_table, |f| ours.contains(f[0]), &key_rows);
        let signing = rewrite(
            signing_table,
            |f| patterns.contains(f[0]) || f.get(1).is_some_and(|name| ours.contains(*name)),
            &signing_rows,
        );
        [keys, signing]
    }
}

impl Signer for Opendkim {
    fn key_files(&self) -> Option<&KeyFiles> {
        Some(&self.keys)
    }

    fn switch(&self, plans: &[SignerPlan]) -> Result<()> {
        let switch = || {
            let reload = self.config.reload().map_err(SignerError::Setting)?;
            let files = FileSet::read(&[&self.config.key_table, &self.config.signing_table])?;
            let tables = self.tables(plans, files.text(0), files.text(1));
            let timeout = command::timeout(self.config.timeout);
            files.switch_verified(
                &tables,
                || reload.run(),
                || command::run_optional("verify", self.config.verify.as_ref(), timeout),
            )
        };
        switch().map_err(|err| err.within("OpenDKIM"))
    }

    fn table_files(&self) -> Vec<&Path> {
        vec![&self.config.key_table, &self.config.signing_table]
    }

    fn probe(&self) -> Option<&ProbeSettings> {
        self.config.probe.as_ref()
    }

    fn check(&self) -> Result<()> {
        let reload = self.config.reload().map_err(SignerError::Setting)?;
        fsutil::ensure_private_dir(&self.config.key_dir)
            .map_err(|err| err.within("OpenDKIM key_dir"))?;
        self.keys.check()?;
        check_writable(&self.config.key_table)?;
        check_writable(&self.config.signing_table)?;
        reload.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_key;

    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use rotor_common::KeyAlgorithm;

    fn config(dir: &Path, reload: &str) -> OpendkimSettings {
        OpendkimSettings {
            key_table: dir.join("KeyTable"),
            signing_table: dir.join("SigningTable"),
            key_dir: dir.join("keys"),
            reload: Some(reload.into()),
            pid_file: None,
            process: None,
            verify: None,
            timeout: None,
            user: None,
            group: None,
            mode: None,
            overlap: false,
            probe: None,
        }
    }

    fn opendkim(dir: &Path, reload: &str) -> Opendkim {
        Opendkim::new(config(dir, reload))
    }

    fn key(dir: &Path, selector: &str) -> SignerKey {
        test_key(dir, selector, KeyAlgorithm::Rsa2048)
    }

    /// The three steps, as the engine takes them for one signer.
    fn apply(signer: &Opendkim, plan: &SignerPlan) -> Result<()> {
        signer.stage(plan)?;
        signer.switch(std::slice::from_ref(plan))?;
        signer.clean(plan)
    }

    fn setup() -> (tempfile::TempDir, Opendkim) {
        let dir = tempfile::tempdir().unwrap();
        fsutil::ensure_private_dir(&dir.path().join("keys")).unwrap();
        fs::write(
            dir.path().join("KeyTable"),
            "old._domainkey.other.org other.org:old:/k/other\n",
        )
        .unwrap();
        fs::write(dir.path().join("SigningTable"), "# operator rows\n*@other.org old._domainkey.other.org\n*@example.com default._domainkey.example.com\n").unwrap();
        let signer = opendkim(dir.path(), "true");
        (dir, signer)
    }

    #[test]
    fn switches_the_domain_and_keeps_other_rows() {
        let (dir, signer) = setup();
        let (a, b) = (key(dir.path(), "a"), key(dir.path(), "b"));
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![b.clone()],
            kept: vec![a.clone()],
            removed: vec![],
        };
        apply(&signer, &plan).unwrap();
        apply(&signer, &plan).unwrap();
        let keys = fs::read_to_string(dir.path().join("KeyTable")).unwrap();
        let signing = fs::read_to_string(dir.path().join("SigningTable")).unwrap();
        let key_dir = dir.path().join("keys");
        assert_eq!(
            keys,
            format!(
                "old._domainkey.other.org other.org:old:/k/other\nb._domainkey.example.com example.com:b:{}/example.com.b.pem\na._domainkey.example.com example.com:a:{}/example.com.a.pem\n",
                key_dir.display(),
                key_dir.display()
            )
        );
        assert_eq!(
            signing,
            "# operator rows\n*@other.org old._domainkey.other.org\n*@example.com b._domainkey.example.com\n"
        );
        let installed = key_dir.join("example.com.b.pem");
        assert_eq!(
            fs::read(&installed).unwrap(),
            fs::read(&plan.signing[0].source).unwrap()
        );
        assert_eq!(
            fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let retire = SignerPlan {
            domain: "example.com".into(),
            signing: vec![b],
            kept: vec![],
            removed: vec![a],
        };
        apply(&signer, &retire).unwrap();
        let keys = fs::read_to_string(dir.path().join("KeyTable")).unwrap();
        assert!(!keys.contains("a._domainkey"), "{keys}");
        assert!(!key_dir.join("example.com.a.pem").exists());
    }

    #[test]
    fn a_failed_reload_restores_the_tables() {
        let (dir, _) = setup();
        let before = fs::read_to_string(dir.path().join("SigningTable")).unwrap();
        let signer = opendkim(dir.path(), "echo opendkim is down >&2; exit 3");
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![key(dir.path(), "b")],
            kept: vec![],
            removed: vec![],
        };
        let err = format!("{:#}", apply(&signer, &plan).unwrap_err());
        assert!(err.contains("opendkim is down"), "{err}");
        assert!(err.contains("restored"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("SigningTable")).unwrap(),
            before
        );
    }

    #[test]
    fn with_overlap_a_kept_key_keeps_signing() {
        let dir = tempfile::tempdir().unwrap();
        fsutil::ensure_private_dir(&dir.path().join("keys")).unwrap();
        let signer = Opendkim::new(OpendkimSettings {
            overlap: true,
            ..config(dir.path(), "true")
        });
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![key(dir.path(), "new")],
            kept: vec![key(dir.path(), "old")],
            removed: vec![],
        };
        apply(&signer, &plan).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("SigningTable")).unwrap(),
            "*@example.com new._domainkey.example.com\n*@example.com old._domainkey.example.com\n"
        );
    }

    #[test]
    fn reload_must_be_configured_once() {
        let mut config = config(Path::new("/x"), "true");
        config.pid_file = Some("/run/opendkim.pid".into());
        assert!(config.reload().unwrap_err().contains("not both"));
        config.reload = None;
        config.pid_file = None;
        assert!(config.reload().unwrap_err().contains("pid_file"));
    }

    #[test]
    fn a_failed_verify_restores_the_tables_and_reloads_again() {
        let (dir, _) = setup();
        let before = fs::read_to_string(dir.path().join("SigningTable")).unwrap();
        let reloads = dir.path().join("reloads");
        let signer = Opendkim::new(OpendkimSettings {
            verify: Some("echo unsigned >&2; exit 1".into()),
            ..config(dir.path(), &format!("echo reload >> {}", reloads.display()))
        });
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![key(dir.path(), "b")],
            kept: vec![],
            removed: vec![],
        };
        let err = format!("{:#}", apply(&signer, &plan).unwrap_err());
        assert!(
            err.contains("verify: exited with status 1: unsigned"),
            "{err}"
        );
        assert!(err.contains("restored"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("SigningTable")).unwrap(),
            before
        );
        assert_eq!(fs::read_to_string(&reloads).unwrap(), "reload\nreload\n");
    }

    #[test]
    fn a_hanging_reload_times_out_and_the_tables_are_restored() {
        let (dir, _) = setup();
        let before = fs::read_to_string(dir.path().join("SigningTable")).unwrap();
        let signer = Opendkim::new(OpendkimSettings {
            timeout: Some("1s".parse().unwrap()),
            ..config(dir.path(), "sleep 1000")
        });
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![key(dir.path(), "b")],
            kept: vec![],
            removed: vec![],
        };
        let err = format!("{:#}", signer.switch(&[plan]).unwrap_err());
        assert!(err.contains("reload: timed out after 1s"), "{err}");
        assert!(
            !err.contains("sleep"),
            "the command line is not shown: {err}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("SigningTable")).unwrap(),
            before
        );
    }

    #[test]
    fn sweep_removes_temporary_files_of_a_dead_run() {
        let (dir, signer) = setup();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let pid = dead.id();
        dead.wait().unwrap();
        let key = dir
            .path()
            .join(format!("keys/.example.com.s.pem.rotor-tmp-{pid}"));
        let table = dir.path().join(format!(".KeyTable.rotor-tmp-{pid}"));
        fs::write(&key, "secret").unwrap();
        fs::write(&table, "rows").unwrap();
        signer.sweep().unwrap();
        assert!(!key.exists() && !table.exists());
        assert!(dir.path().join("KeyTable").exists());
    }
}
