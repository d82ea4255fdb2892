//! OpenDKIM in multi-key mode: `KeyTable` and `SigningTable` files, keys in a 0700 directory,
//! reloaded by a command or SIGUSR1.
//!
//! Only the lines of the domain being changed are touched: its `*@domain` signing rows and the
//! KeyTable rows of rotor's selectors. Everything else in the tables stays as the operator wrote it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Group, Uid, User, chown};
use serde::Deserialize;

use super::{Reload, Signer, SignerKey, SignerPlan};
use crate::fsutil;

/// The `type: opendkim` signer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpendkimConfig {
    /// The `KeyTable` file (`file:` table).
    pub key_table: PathBuf,
    /// The `SigningTable` file (`refile:` table).
    pub signing_table: PathBuf,
    /// Where OpenDKIM reads keys (0700; keys are written 0600).
    pub key_dir: PathBuf,
    /// A command that reloads OpenDKIM, e.g. `systemctl reload opendkim`.
    pub reload: Option<String>,
    /// OpenDKIM's pid file: rotor sends SIGUSR1 to reload.
    pub pid_file: Option<PathBuf>,
    /// Owner of the key files (default: the owner of `key_dir`).
    pub user: Option<String>,
    /// Group of the key files (default: the group of `key_dir`).
    pub group: Option<String>,
}

impl OpendkimConfig {
    /// How to reload, or why the config cannot say.
    pub fn reload(&self) -> Result<Reload, String> {
        match (&self.reload, &self.pid_file) {
            (Some(command), None) => Ok(Reload::Command(command.clone())),
            (None, Some(pid_file)) => Ok(Reload::Signal(pid_file.clone(), Signal::SIGUSR1)),
            (Some(_), Some(_)) => Err("set `reload:` or `pid_file:`, not both".into()),
            (None, None) => Err("set `reload:` (a command) or `pid_file:` (SIGUSR1), so OpenDKIM re-reads its tables".into()),
        }
    }
}

/// The OpenDKIM adapter.
pub struct Opendkim {
    config: OpendkimConfig,
}

fn key_name(domain: &str, selector: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// A table's lines without those `drop` rejects, followed by `add`.
fn rewrite(table: &str, drop: impl Fn(&[&str]) -> bool, add: &[String]) -> String {
    let mut out = String::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let comment = fields.first().is_none_or(|f| f.starts_with('#'));
        if comment || !drop(&fields) {
            out.push_str(line);
            out.push('\n');
        }
    }
    for line in add {
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Opendkim {
    /// An adapter for the OpenDKIM in `config`.
    pub fn new(config: OpendkimConfig) -> Self {
        Self { config }
    }

    fn installed_path(&self, domain: &str, key: &SignerKey) -> PathBuf {
        self.config
            .key_dir
            .join(format!("{domain}.{}.pem", key.selector))
    }

    fn owner(&self) -> Result<(Uid, Gid)> {
        let dir = fs::metadata(&self.config.key_dir)
            .with_context(|| format!("OpenDKIM key_dir {}", self.config.key_dir.display()))?;
        let uid = match &self.config.user {
            Some(name) => {
                User::from_name(name)?
                    .with_context(|| format!("no user {name:?}"))?
                    .uid
            }
            None => Uid::from_raw(dir.uid()),
        };
        let gid = match &self.config.group {
            Some(name) => {
                Group::from_name(name)?
                    .with_context(|| format!("no group {name:?}"))?
                    .gid
            }
            None => Gid::from_raw(dir.gid()),
        };
        Ok((uid, gid))
    }

    /// Copies a key where OpenDKIM reads it, 0600 and owned by the signer, unless it is there.
    fn install(&self, domain: &str, key: &SignerKey) -> Result<PathBuf> {
        let target = self.installed_path(domain, key);
        let pem = fs::read(&key.source)
            .with_context(|| format!("cannot read private key {}", key.source.display()))?;
        if fs::read(&target).ok().as_deref() != Some(pem.as_slice()) {
            fsutil::write_atomic(&target, &pem, 0o600)?;
        }
        let (uid, gid) = self.owner()?;
        chown(&target, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", target.display()))?;
        Ok(target)
    }

    fn tables(
        &self,
        plan: &SignerPlan,
        key_table: &str,
        signing_table: &str,
    ) -> Result<(String, String)> {
        let domain = plan.domain.as_str();
        let ours: Vec<String> = plan
            .signing
            .iter()
            .chain(&plan.kept)
            .chain(&plan.removed)
            .map(|key| key_name(domain, &key.selector))
            .collect();
        let mut key_rows = Vec::new();
        for key in plan.signing.iter().chain(&plan.kept) {
            let path = self.installed_path(domain, key);
            key_rows.push(format!(
                "{} {domain}:{}:{}",
                key_name(domain, &key.selector),
                key.selector,
                path.display()
            ));
        }
        let keys = rewrite(
            key_table,
            |f| ours.iter().any(|name| name == f[0]),
            &key_rows,
        );
        let pattern = format!("*@{domain}");
        let signing_rows: Vec<String> = plan
            .signing
            .iter()
            .map(|key| format!("{pattern} {}", key_name(domain, &key.selector)))
            .collect();
        let signing = rewrite(
            signing_table,
            |f| {
                f[0] == pattern
                    || f.get(1)
                        .is_some_and(|name| ours.iter().any(|ours| ours == name))
            },
            &signing_rows,
        );
        Ok((keys, signing))
    }
}

/// A file's contents and mode before rotor changed it.
struct Saved {
    path: PathBuf,
    text: Option<String>,
    mode: u32,
}

impl Saved {
    fn read(path: &Path) -> Result<Self> {
        let mode = fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        Ok(Self {
            path: path.to_owned(),
            text: fsutil::read_optional(path)?,
            mode,
        })
    }

    fn write(&self, text: &str) -> Result<()> {
        if self.text.as_deref() != Some(text) {
            fsutil::write_atomic(&self.path, text.as_bytes(), self.mode)?;
        }
        Ok(())
    }

    fn restore(&self) -> Result<()> {
        match &self.text {
            Some(text) => fsutil::write_atomic(&self.path, text.as_bytes(), self.mode),
            None => fsutil::remove_file(&self.path),
        }
    }
}

impl Signer for Opendkim {
    fn apply(&self, plan: &SignerPlan) -> Result<()> {
        let reload = self.config.reload().map_err(anyhow::Error::msg)?;
        for key in plan.signing.iter().chain(&plan.kept) {
            self.install(&plan.domain, key)?;
        }
        let key_table = Saved::read(&self.config.key_table)?;
        let signing_table = Saved::read(&self.config.signing_table)?;
        let (keys, signing) = self.tables(
            plan,
            key_table.text.as_deref().unwrap_or_default(),
            signing_table.text.as_deref().unwrap_or_default(),
        )?;
        let switched = key_table
            .write(&keys)
            .and_then(|()| signing_table.write(&signing))
            .and_then(|()| reload.run());
        if let Err(err) = switched {
            let restored = key_table.restore().and_then(|()| signing_table.restore());
            if let Err(restore) = restored {
                bail!("{err:#}; restoring the previous tables failed too: {restore:#}");
            }
            return Err(err.context("OpenDKIM was not switched; its previous tables are restored"));
        }
        for key in &plan.removed {
            fsutil::remove_file(&self.installed_path(&plan.domain, key))?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let reload = self.config.reload().map_err(anyhow::Error::msg)?;
        fsutil::ensure_private_dir(&self.config.key_dir).context("OpenDKIM key_dir")?;
        self.owner()?;
        for table in [&self.config.key_table, &self.config.signing_table] {
            let dir = table.parent().unwrap_or(Path::new("."));
            nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).with_context(|| {
                format!(
                    "cannot write in {} (for {})",
                    dir.display(),
                    table.display()
                )
            })?;
        }
        reload.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opendkim(dir: &Path, reload: &str) -> Opendkim {
        Opendkim::new(OpendkimConfig {
            key_table: dir.join("KeyTable"),
            signing_table: dir.join("SigningTable"),
            key_dir: dir.join("keys"),
            reload: Some(reload.into()),
            pid_file: None,
            user: None,
            group: None,
        })
    }

    fn key(dir: &Path, selector: &str) -> SignerKey {
        let source = dir.join(format!("{selector}.src"));
        fs::write(&source, format!("PEM {selector}")).unwrap();
        SignerKey {
            selector: selector.into(),
            source,
        }
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
        signer.apply(&plan).unwrap();
        signer.apply(&plan).unwrap();
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
        assert_eq!(fs::read_to_string(&installed).unwrap(), "PEM b");
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
        signer.apply(&retire).unwrap();
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
        let err = format!("{:#}", signer.apply(&plan).unwrap_err());
        assert!(err.contains("opendkim is down"), "{err}");
        assert!(err.contains("restored"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("SigningTable")).unwrap(),
            before
        );
    }

    #[test]
    fn reload_must_be_configured_once() {
        let mut config = opendkim(Path::new("/x"), "true").config;
        config.pid_file = Some("/run/opendkim.pid".into());
        assert!(config.reload().unwrap_err().contains("not both"));
        config.reload = None;
        config.pid_file = None;
        assert!(config.reload().unwrap_err().contains("pid_file"));
    }
}
