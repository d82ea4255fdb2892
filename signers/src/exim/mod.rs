//! Exim: one `lsearch` file, written atomically, that the smtp transport's DKIM options look up
//! on every delivery, so no reload is needed. Each domain maps to its selectors (a colon list:
//! Exim signs once per selector), and each `<selector>._domainkey.<domain>` to its key file:
//!
//! ```text
//! example.com: sel-rsa : sel-ed
//! sel-rsa._domainkey.example.com: /etc/exim4/dkim/example.com.sel-rsa.pem
//! ```
//!
//! used from the transport as
//!
//! ```text
//! dkim_domain = ${lookup{$sender_address_domain}lsearch{TABLE}{$sender_address_domain}}
//! dkim_selector = ${lookup{$dkim_domain}lsearch{TABLE}}
//! dkim_private_key = ${lookup{$dkim_selector._domainkey.$dkim_domain}lsearch{TABLE}{$value}{0}}
//! ```
//!
//! Exim reads keys as its own user, so key files are group-readable (0640) by default: give
//! them the group Exim runs as (`group: Debian-exim` on Debian).

mod settings;

pub use settings::EximSettings;

use std::collections::HashSet;
use std::path::Path;

use crate::error::Result;
use crate::key_files::{KeyFiles, KeyFormat};
use crate::probe::ProbeSettings;
use crate::tables::{check_writable, rewrite, switch_file};
use crate::{Signer, SignerPlan};

/// The Exim adapter.
pub struct Exim {
    config: EximSettings,
    keys: KeyFiles,
}

impl Exim {
    /// An adapter for `config`.
    pub fn new(config: EximSettings) -> Self {
        let keys = KeyFiles::new(
            config.key_dir.clone(),
            config.ownership(),
            0o640,
            "pem",
            KeyFormat::Pem,
        );
        Self { config, keys }
    }

    /// The table with the rows of every domain of `plans` replaced: its selector list and
    /// its keys' paths.
    fn table(&self, plans: &[SignerPlan], current: &str) -> String {
        let domains: HashSet<&str> = plans.iter().map(|plan| plan.domain.as_str()).collect();
        let mut rows = Vec::new();
        for plan in plans {
            let domain = plan.domain.as_str();
            if !plan.signing.is_empty() {
                let selectors: Vec<&str> =
                    plan.signing.iter().map(|k| k.selector.as_str()).collect();
                rows.push(format!("{domain}: {}", selectors.join(" : ")));
            }
            for key in plan.installed() {
                rows.push(format!(
                    "{}._domainkey.{domain}: {}",
                    key.selector,
                    self.keys.path(domain, key).display()
                ));
            }
        }
        // A domain's rows: `domain:` and `<selector>._domainkey.domain:`.
        let ours = |name: &str| {
            let name = name.strip_suffix(':').unwrap_or_default();
            let domain = name.split_once("._domainkey.").map_or(name, |(_, d)| d);
            domains.contains(domain)
        };
        rewrite(current, |fields| ours(fields[0]), &rows)
    }
}

impl Signer for Exim {
    fn key_files(&self) -> Option<&KeyFiles> {
        Some(&self.keys)
    }

    fn switch(&self, plans: &[SignerPlan]) -> Result<()> {
        switch_file(
            &self.config.table,
            |current| Ok(self.table(plans, current)),
            self.config.reload.as_ref(),
            self.config.timeout,
        )
        .map_err(|err| err.within("Exim"))
    }

    fn table_files(&self) -> Vec<&Path> {
        vec![&self.config.table]
    }

    fn probe(&self) -> Option<&ProbeSettings> {
        self.config.probe.as_ref()
    }

    fn check(&self) -> Result<()> {
        self.keys.check()?;
        check_writable(&self.config.table)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use rotor_common::KeyAlgorithm;

    use super::*;
    use crate::{fs as fsutil, test_key};

    #[test]
    fn the_table_lists_selectors_and_key_files_and_keeps_other_rows() {
        let dir = tempfile::tempdir().unwrap();
        fsutil::create_dir(&dir.path().join("keys")).unwrap();
        let exim = Exim::new(EximSettings {
            table: dir.path().join("dkim"),
            key_dir: dir.path().join("keys"),
            reload: None,
            timeout: None,
            user: None,
            group: None,
            mode: None,
            probe: None,
        });
        fs::write(
            dir.path().join("dkim"),
            "other.org: s\ns._domainkey.other.org: /k/other.pem\nexample.com: old\nold._domainkey.example.com: /k/old.pem\n",
        )
        .unwrap();
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![
                test_key(dir.path(), "r2", KeyAlgorithm::Rsa2048),
                test_key(dir.path(), "e2", KeyAlgorithm::Ed25519),
            ],
            kept: vec![test_key(dir.path(), "old", KeyAlgorithm::Rsa2048)],
            removed: vec![],
        };
        exim.stage(&plan).unwrap();
        exim.switch(std::slice::from_ref(&plan)).unwrap();
        let k = dir.path().join("keys");
        assert_eq!(
            fs::read_to_string(dir.path().join("dkim")).unwrap(),
            format!(
                "other.org: s\ns._domainkey.other.org: /k/other.pem\nexample.com: r2 : e2\nr2._domainkey.example.com: {k}/example.com.r2.pem\ne2._domainkey.example.com: {k}/example.com.e2.pem\nold._domainkey.example.com: {k}/example.com.old.pem\n",
                k = k.display()
            )
        );
        let mode = fs::metadata(k.join("example.com.r2.pem")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o640
        );
    }
}
