//! KumoMTA: the DKIM helper's data file (`dkim_data.toml`, read by
//! `policy-extras.dkim_sign`). Rotor edits only its domains' entries, with `toml_edit` so the
//! rest of the file keeps its layout and comments:
//!
//! ```toml
//! [domain."example.com"]
//! selector = "rotor20261130"
//! algo = "sha256"
//! filename = "/opt/kumomta/etc/dkim/example.com.rotor20261130.pem"
//! additional_signatures = ["rotor:example.com:ed25519"]
//!
//! [signature."rotor:example.com:ed25519"]
//! domain = "example.com"
//! selector = "rotor20261130-ed25519"
//! algo = "ed25519"
//! filename = "/opt/kumomta/etc/dkim/example.com.rotor20261130-ed25519.pem"
//! policy = "Always"
//! ```
//!
//! KumoMTA caches signers for up to 300 seconds; new keys have new paths, so a cached signer
//! never uses a key that is gone before its record is.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::files::{FileSet, KeyFiles, KeyFormat, Ownership, check_writable};
use super::{Reload, Signer, SignerKey, SignerPlan};
use crate::config::FileMode;
use crate::fsutil;

/// The `type: kumomta` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KumomtaConfig {
    /// The DKIM data file (`dkim_data.toml`).
    pub data_file: PathBuf,
    /// Where KumoMTA reads keys.
    pub key_dir: PathBuf,
    /// A command run after the data file changed (none needed: the helper re-reads it).
    pub reload: Option<String>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`).
    pub group: Option<String>,
    /// Mode of the key files (default 0600).
    pub mode: Option<FileMode>,
}

/// The KumoMTA adapter.
pub struct Kumomta {
    config: KumomtaConfig,
    keys: KeyFiles,
}

/// The name of the extra signature rotor keeps for `domain`'s second (Ed25519) key.
fn signature_name(domain: &str) -> String {
    format!("rotor:{domain}:ed25519")
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
    pub fn new(config: KumomtaConfig) -> Self {
        let ownership = Ownership {
            user: config.user.clone(),
            group: config.group.clone(),
            mode: config.mode,
        };
        let keys = KeyFiles::new(config.key_dir.clone(), ownership, 0o600);
        Self { config, keys }
    }

    fn key_path(&self, domain: &str, key: &SignerKey) -> PathBuf {
        self.keys.path(domain, key, "pem")
    }

    fn entry(&self, domain: &str, key: &SignerKey) -> Table {
        let mut table = Table::new();
        table["selector"] = value(key.selector.as_str());
        table["algo"] = value(algo(key));
        table["filename"] = value(self.key_path(domain, key).display().to_string());
        table
    }

    /// The data file with `plan.domain`'s entries as `plan` says.
    fn data(&self, plan: &SignerPlan, current: &str) -> Result<String> {
        let domain = plan.domain.as_str();
        let mut doc: DocumentMut = current
            .parse()
            .with_context(|| format!("{} is not valid TOML", self.config.data_file.display()))?;
        let extra = signature_name(domain);
        for section in ["domain", "signature"] {
            if !doc.contains_key(section) {
                let mut table = Table::new();
                table.set_implicit(true);
                doc[section] = Item::Table(table);
            }
        }
        let (first, second) = match plan.signing.as_slice() {
            [] => bail!("{domain}: no key to sign with"),
            [one] => (one, None),
            [one, two] => (one, Some(two)),
            _ => bail!("{domain}: KumoMTA is given at most two keys (RSA and Ed25519)"),
        };
        // Keep what the operator set in the domain's entry (headers, policy…).
        let mut entry = doc["domain"]
            .get(domain)
            .and_then(Item::as_table)
            .cloned()
            .unwrap_or_default();
        for (field, item) in self.entry(domain, first).iter() {
            entry[field] = item.clone();
        }
        match second {
            Some(key) => {
                let mut signature = self.entry(domain, key);
                signature["domain"] = value(domain);
                signature["policy"] = value("Always");
                signature.sort_values_by(|a, _, b, _| a.get().cmp(b.get()));
                doc["signature"][&extra] = Item::Table(signature);
                let mut list = Array::new();
                list.push(extra.as_str());
                entry["additional_signatures"] = value(list);
            }
            None => {
                if let Some(signatures) = doc["signature"].as_table_mut() {
                    signatures.remove(&extra);
                }
                entry.remove("additional_signatures");
            }
        }
        doc["domain"][domain] = Item::Table(entry);
        Ok(doc.to_string())
    }
}

impl Signer for Kumomta {
    fn stage(&self, plan: &SignerPlan) -> Result<()> {
        for key in plan.installed() {
            let path = self.key_path(&plan.domain, key);
            self.keys.install(&path, key, KeyFormat::Pem)?;
        }
        Ok(())
    }

    fn switch(&self, plan: &SignerPlan) -> Result<()> {
        let files = FileSet::read(&[&self.config.data_file])?;
        let data = self.data(plan, files.text(0))?;
        let reload = self.config.reload.clone().map(Reload::Command);
        files
            .switch(&[data], || match &reload {
                Some(reload) => reload.run(),
                None => Ok(()),
            })
            .context("KumoMTA")
    }

    fn clean(&self, plan: &SignerPlan) -> Result<()> {
        for key in &plan.removed {
            fsutil::remove_file(&self.key_path(&plan.domain, key))?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        self.keys.check()?;
        check_writable(&self.config.data_file)
    }
}
