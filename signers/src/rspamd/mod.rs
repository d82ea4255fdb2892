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

use std::collections::HashSet;
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

    /// The selector map with the line of every domain of `plans` replaced (or removed when
    /// it signs twice).
    fn map(&self, plans: &[SignerPlan], map: &str) -> String {
        let domains: HashSet<&str> = plans.iter().map(|plan| plan.domain.as_str()).collect();
        let lines: Vec<String> = plans
            .iter()
            .filter(|plan| !twice(plan))
            .filter_map(|plan| {
                let key = plan.signing.first()?;
                Some(format!("{} {}", plan.domain, key.selector))
            })
            .collect();
        rewrite(map, |fields| domains.contains(fields[0]), &lines)
    }

    /// The domains file with the entry of every domain of `plans` replaced (or removed when it
    /// signs once).
    fn domains(&self, plans: &[SignerPlan], current: &str) -> String {
        let domains: HashSet<&str> = plans.iter().map(|plan| plan.domain.as_str()).collect();
        let mut entries: Vec<String> = current
            .lines()
            .filter(|line| line.starts_with("  \""))
            .filter(|line| {
                let name = line[3..].split_once('"').map(|(name, _)| name);
                !name.is_some_and(|name| domains.contains(name))
            })
            .map(str::to_string)
            .collect();
        for plan in plans.iter().filter(|plan| twice(plan)) {
            let domain = plan.domain.as_str();
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

/// Whether `plan`'s domain signs twice (RSA and Ed25519): an entry of the domains file.
fn twice(plan: &SignerPlan) -> bool {
    plan.signing.len() > 1
}

impl Signer for Rspamd {
    fn key_files(&self) -> Option<&KeyFiles> {
        Some(&self.keys)
    }

    fn switch(&self, plans: &[SignerPlan]) -> Result<()> {
        let mut paths: Vec<&Path> = vec![&self.config.selector_map];
        if let Some(domains) = &self.config.domains_file {
            paths.push(domains);
        } else if plans.iter().any(twice) {
            return Err(SignerError::Setting(
                "rspamd signs a domain twice only through `domains_file:`".into(),
            ));
        }
        let switch = || {
            let files = FileSet::read(&paths)?;
            let mut texts = vec![self.map(plans, files.text(0))];
            if self.config.domains_file.is_some() {
                texts.push(self.domains(plans, files.text(1)));
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
        signer.switch(std::slice::from_ref(&once)).unwrap();
        let map = fs::read_to_string(dir.path().join("selectors.map")).unwrap();
        assert_eq!(map, "# operator\nother.org sel\nexample.com r1\n");

        let twice = SignerPlan {
            signing: vec![rsa, ed],
            ..once
        };
        signer.stage(&twice).unwrap();
        signer.switch(std::slice::from_ref(&twice)).unwrap();
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
        let err = format!("{:#}", signer.switch(&[plan]).unwrap_err());
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
