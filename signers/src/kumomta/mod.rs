//! KumoMTA: the DKIM helper's data file (`dkim_data.toml`, read by `policy-extras.dkim_sign`,
//! <https://docs.kumomta.com/userguide/configuration/dkim/>). Rotor edits only its domains'
//! blocks, with `toml_edit` so the rest of the file (`[base]`, other domains, comments) keeps its
//! layout:
//!
//! ```toml
//! [domain."example.com"]
//! selector = "rotor20261130"
//! algo = "sha256"
//! filename = "/opt/kumomta/etc/dkim/example.com.rotor20261130.pem"
//! ```
//!
//! The helper signs a domain once: its `additional_signatures` apply to every message whatever
//! its sender, so a second (Ed25519) signature per domain cannot be expressed there.
//! KumoMTA may keep using a cached signer for up to 300 seconds; each key has its own file, kept
//! until the key is retired, days later.

mod settings;

pub use settings::KumomtaSettings;

use std::path::Path;

use toml_edit::{DocumentMut, Item, Table, value};

use crate::error::{Result, SignerError};
use crate::key_files::{KeyFiles, KeyFormat};
use crate::probe::ProbeSettings;
use crate::tables::{check_writable, switch_file};
use crate::{Signer, SignerKey, SignerPlan};

/// The KumoMTA adapter.
pub struct Kumomta {
    config: KumomtaSettings,
    keys: KeyFiles,
}

fn algo(key: &SignerKey) -> &'static str {
    if key.algorithm.is_rsa() {
        "sha256"
    } else {
        "ed25519"
    }
}

impl Kumomta {
    /// An adapter for `config`.
    pub fn new(config: KumomtaSettings) -> Self {
        let keys = KeyFiles::new(
            config.key_dir.clone(),
            config.ownership(),
            0o600,
            "pem",
            KeyFormat::Pem,
        );
        Self { config, keys }
    }

    /// The data file with the block of every domain of `plans` signing with its key. What the
    /// operator set in a block besides the key (headers, policy…) stays.
    fn data(&self, plans: &[SignerPlan], current: &str) -> Result<String> {
        let mut doc: DocumentMut = current.parse().map_err(|err| {
            SignerError::Setting(format!(
                "{} is not valid TOML: {err}",
                self.config.data_file.display()
            ))
        })?;
        for plan in plans {
            self.set_block(&mut doc, plan)?;
        }
        Ok(doc.to_string())
    }

    /// Sets `plan.domain`'s block in `doc` to sign with its key.
    fn set_block(&self, doc: &mut DocumentMut, plan: &SignerPlan) -> Result<()> {
        let domain = plan.domain.as_str();
        let key = match plan.signing.as_slice() {
            [key] => key,
            [] => {
                return Err(SignerError::Setting(format!(
                    "{domain}: no key to sign with"
                )));
            }
            _ => {
                return Err(SignerError::Setting(format!(
                    "{domain}: KumoMTA's DKIM helper signs a domain with one key"
                )));
            }
        };
        if !doc.contains_key("domain") {
            let mut table = Table::new();
            table.set_implicit(true);
            doc["domain"] = Item::Table(table);
        }
        let mut block = doc["domain"]
            .get(domain)
            .and_then(Item::as_table)
            .cloned()
            .unwrap_or_default();
        block["selector"] = value(key.selector.as_str());
        block["algo"] = value(algo(key));
        block["filename"] = value(self.keys.path(domain, key).display().to_string());
        doc["domain"][domain] = Item::Table(block);
        Ok(())
    }
}

impl Signer for Kumomta {
    fn key_files(&self) -> Option<&KeyFiles> {
        Some(&self.keys)
    }

    fn switch(&self, plans: &[SignerPlan]) -> Result<()> {
        switch_file(
            &self.config.data_file,
            |current| self.data(plans, current),
            self.config.reload.as_ref(),
            self.config.timeout,
        )
        .map_err(|err| err.within("KumoMTA"))
    }

    fn table_files(&self) -> Vec<&Path> {
        vec![&self.config.data_file]
    }

    fn probe(&self) -> Option<&ProbeSettings> {
        self.config.probe.as_ref()
    }

    fn check(&self) -> Result<()> {
        self.keys.check()?;
        check_writable(&self.config.data_file)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::process::Command;

    use rotor_common::KeyAlgorithm;
    use rotor_keys::PrivateKey;

    use super::*;
    use crate::{SignerKey, fs as fsutil};

    #[test]
    fn writes_the_documented_format_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        fsutil::create_dir(&dir.path().join("keys")).unwrap();
        let data = dir.path().join("dkim_data.toml");
        fs::write(
            &data,
            "# operator's comment\n[base]\nheaders = [\"From\", \"To\", \"Subject\"]\n\n[domain.\"other.org\"]\nselector = \"s\"\n\n[domain.\"example.com\"]\nselector = \"old\"\npolicy = \"TempFailIfNotInDNS\"\n",
        )
        .unwrap();
        let kumo = Kumomta::new(KumomtaSettings {
            data_file: data.clone(),
            key_dir: dir.path().join("keys"),
            reload: None,
            timeout: None,
            user: None,
            group: None,
            mode: None,
            probe: None,
        });
        let source = dir.path().join("new.pem");
        fs::write(
            &source,
            PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap().pem(),
        )
        .unwrap();
        let plan = SignerPlan {
            domain: "example.com".into(),
            signing: vec![SignerKey {
                selector: "new".into(),
                algorithm: KeyAlgorithm::Rsa2048,
                source,
            }],
            kept: vec![],
            removed: vec![],
        };
        kumo.stage(&plan).unwrap();
        kumo.switch(std::slice::from_ref(&plan)).unwrap();
        let text = fs::read_to_string(&data).unwrap();
        let key = dir.path().join("keys/example.com.new.pem");
        assert_eq!(
            text,
            format!(
                "# operator's comment\n[base]\nheaders = [\"From\", \"To\", \"Subject\"]\n\n[domain.\"other.org\"]\nselector = \"s\"\n\n[domain.\"example.com\"]\nselector = \"new\"\npolicy = \"TempFailIfNotInDNS\"\nalgo = \"sha256\"\nfilename = \"{}\"\n",
                key.display()
            )
        );
        // KumoMTA's documented format, as its helper reads it.
        let checker = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testkit/helpers/kumo_dkim_data_check.py");
        let out = Command::new("python3")
            .arg(checker)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
