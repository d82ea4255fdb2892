//! rspamd's `dkim_signing` module. A domain that signs with one key is a line of the selector
//! map (`example.com selector`), its key at `<key_dir>/<domain>.<selector>.key`, the path
//! template rspamd is configured with: rspamd re-reads a changed map by itself, and a new
//! selector always has a new path, so its key cache never serves an old key. A domain that signs
//! twice (RSA and Ed25519) is an entry of `domains_file`, a file rotor owns and rspamd includes,
//! which needs a reload.
//!
//! Ed25519 keys are written as the base64 of their seed, the form rspamd 3.4 reads (it skips a
//! PEM Ed25519 key).

mod settings;

pub use settings::RspamdSettings;

use std::path::Path;

use crate::error::{Result, SignerError};
use crate::key_files::{KeyFiles, KeyFormat};
use crate::probe::ProbeSettings;
use crate::tables::{FileSet, check_writable, rewrite};
use crate::{Signer, SignerPlan, command};

/// The rspamd adapter.
pub struct Rspamd {
    config: RspamdSettings,
    keys: KeyFiles,
}

const DOMAINS_HEADER: &str =
    "# Written by rotor: the DKIM selectors of domains that sign twice (RSA and Ed25519).
# Included from local.d/dkim_signing.conf; do not edit.
domain {
";

impl Rspamd {
    /// An adapter for `config`.
    pub fn new(config: RspamdSettings) -> Self {
        let keys = KeyFiles::new(
            config.key_dir.clone(),
            config.ownership(),
            0o600,
            "key",
            KeyFormat::Ed25519Seed,
        );
        Self { config, keys }
    }

    /// The selector map with `domain`'s line replaced (or removed when it signs twice).
    fn map(&self, plan: &SignerPlan, map: &str, twice: bool) -> String {
        let domain = plan.domain.as_str();
        let line: Vec<String> = match (twice, plan.signing.first()) {
            (false, Some(key)) => vec![format!("{domain} {}", key.selector)],
            _ => Vec::new(),
        };
        rewrite(map, |fields| fields[0] == domain, &line)
    }

    /// The domains file with `domain`'s entry replaced (or removed when it signs once).
    fn domains(&self, plan: &SignerPlan, current: &str, twice: bool) -> String {
        let domain = plan.domain.as_str();
        let mut entries: Vec<String> = current
            .lines()
            .filter(|line| line.starts_with("  \""))
            .filter(|line| !line.starts_with(&format!("  \"{domain}\" ")))
            .map(str::to_string)
            .collect();
        if twice {
            let selectors: Vec<String> = plan
                .signing
                .iter()
                .map(|key| {
                    format!(
                        "{{ path = \"{}\"; selector = \"{}\"; }}",
                        self.keys.path(domain, key).display(),
                        key.selector
                    )
                })
                .collect();
            entries.push(format!(
                "  \"{domain}\" {{ selectors [ {} ]; }}",
                selectors.join(", ")
            ));
        }
        entries.sort();
        format!("{DOMAINS_HEADER}{}}}\n", entries.join("\n") + "\n")
    }
}

impl Signer for Rspamd {
    fn key_files(&self) -> Option<&KeyFiles> {
        Some(&self.keys)
    }

    fn switch(&self, plan: &SignerPlan) -> Result<()> {
        let twice = plan.signing.len() > 1;
        let mut paths: Vec<&Path> = vec![&self.config.selector_map];
        if let Some(domains) = &self.config.domains_file {
            paths.push(domains);
        } else if twice {
            return Err(SignerError::Setting(
                "rspamd signs a domain twice only through `domains_file:`".into(),
            ));
        }
        let switch = || {
            let files = FileSet::read(&paths)?;
            let mut texts = vec![self.map(plan, files.text(0), twice)];
            if self.config.domains_file.is_some() {
                texts.push(self.domains(plan, files.text(1), twice));
            }
            files.switch(&texts, || {
                let timeout = command::timeout(self.config.timeout);
                command::run_optional("configtest", self.config.configtest.as_ref(), timeout)?;
                command::run_optional("reload", self.config.reload.as_ref(), timeout)
            })
        };
        switch().map_err(|err| err.within("rspamd"))
    }

    fn table_files(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = vec![&self.config.selector_map];
        files.extend(self.config.domains_file.as_deref());
        files
    }

    fn probe(&self) -> Option<&ProbeSettings> {
        self.config.probe.as_ref()
    }

    fn check(&self) -> Result<()> {
        self.config.validate().map_err(SignerError::Setting)?;
        self.keys.check()?;
        check_writable(&self.config.selector_map)?;
        if let Some(domains) = &self.config.domains_file {
            check_writable(domains)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use rotor_common::KeyAlgorithm;

    use super::*;
    use crate::{fs as fsutil, test_key};

    fn rspamd(dir: &Path) -> Rspamd {
        fsutil::create_dir(&dir.join("keys")).unwrap();
        Rspamd::new(RspamdSettings {
            key_dir: dir.join("keys"),
            selector_map: dir.join("selectors.map"),
            domains_file: Some(dir.join("domains.inc")),
            reload: Some("true".into()),
            configtest: None,
            timeout: None,
            user: None,
            group: None,
            mode: None,
            probe: None,
        })
    }

    #[test]
    fn one_key_goes_to_the_map_two_to_the_domains_file() {
        let dir = tempfile::tempdir().unwrap();
        let signer = rspamd(dir.path());
        fs::write(
            dir.path().join("selectors.map"),
            "# operator\nother.org sel\n",
        )
        .unwrap();
        let rsa = test_key(dir.path(), "r1", KeyAlgorithm::Rsa2048);
        let ed = test_key(dir.path(), "e1", KeyAlgorithm::Ed25519);
        let once = SignerPlan {
            domain: "example.com".into(),
            signing: vec![rsa.clone()],
            kept: vec![],
            removed: vec![],
        };
        signer.stage(&once).unwrap();
        signer.switch(&once).unwrap();
        let map = fs::read_to_string(dir.path().join("selectors.map")).unwrap();
        assert_eq!(map, "# operator\nother.org sel\nexample.com r1\n");

        let twice = SignerPlan {
            signing: vec![rsa, ed],
            ..once
        };
        signer.stage(&twice).unwrap();
        signer.switch(&twice).unwrap();
        let map = fs::read_to_string(dir.path().join("selectors.map")).unwrap();
        assert_eq!(map, "# operator\nother.org sel\n");
        let domains = fs::read_to_string(dir.path().join("domains.inc")).unwrap();
        let keys = dir.path().join("keys");
        assert!(
            domains.ends_with(&format!(
                "domain {{\n  \"example.com\" {{ selectors [ {{ path = \"{k}/example.com.r1.key\"; selector = \"r1\"; }}, {{ path = \"{k}/example.com.e1.key\"; selector = \"e1\"; }} ]; }}\n}}\n",
                k = keys.display()
            )),
            "{domains}"
        );
        let seed = fs::read_to_string(keys.join("example.com.e1.key")).unwrap();
        assert_eq!(seed.trim().len(), 44, "Ed25519 as its base64 seed");
        assert!(
            fs::read_to_string(keys.join("example.com.r1.key"))
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn a_failed_configtest_restores_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let mut signer = rspamd(dir.path());
        signer.config.configtest = Some("echo syntax error >&2; false".into());
        fs::write(dir.path().join("selectors.map"), "example.com old\n").unwrap();
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![test_key(dir.path(), "new", KeyAlgorithm::Rsa2048)],
            kept: vec![],
            removed: vec![],
        };
        signer.stage(&plan).unwrap();
        let err = format!("{:#}", signer.switch(&plan).unwrap_err());
        assert!(
            err.contains("syntax error") && err.contains("restored"),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("selectors.map")).unwrap(),
            "example.com old\n"
        );
    }
}
