//! What every signer adapter does with files: key files installed with the signer's owner,
//! group and mode, and a signer's maps or tables switched as one set, all put back if the reload
//! or the check that follows fails.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::unistd::{Gid, Group, Uid, User, chown};
use zeroize::Zeroizing;

use super::{SignerKey, SignerPlan};
use crate::config::FileMode;
use crate::fsutil;
use crate::keys::PrivateKey;

/// Who owns the key files a signer reads, and their mode: the settings every adapter takes.
#[derive(Clone, Debug, Default)]
pub struct Ownership {
    /// Owner of the key files (default: the owner of the key directory).
    pub user: Option<String>,
    /// Group of the key files (default: the group of the key directory).
    pub group: Option<String>,
    /// Mode of the key files (default: the adapter's, 0600 unless its signer reads keys through
    /// its group).
    pub mode: Option<FileMode>,
}

impl Ownership {
    /// The `user`, `group` and `mode` of an adapter's settings.
    pub fn new(user: &Option<String>, group: &Option<String>, mode: Option<FileMode>) -> Self {
        Self {
            user: user.clone(),
            group: group.clone(),
            mode,
        }
    }
}

/// How a signer wants a private key written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// PKCS#8 PEM, as rotor stores it (OpenSSL and GnuTLS read it).
    Pem,
    /// PEM for RSA; for Ed25519, the base64 of the 32-byte seed (rspamd 3.4 skips PEM
    /// Ed25519 keys).
    Ed25519Seed,
}

/// The key directory of one signer: where each key goes, in which form, with which owner.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    dir: PathBuf,
    ownership: Ownership,
    default_mode: u32,
    extension: &'static str,
    format: KeyFormat,
}

impl KeyFiles {
    /// Keys in `dir`, named `<domain>.<selector>.<extension>`, written in `format` with
    /// `ownership` (its mode, or `default_mode`).
    pub fn new(
        dir: PathBuf,
        ownership: Ownership,
        default_mode: u32,
        extension: &'static str,
        format: KeyFormat,
    ) -> Self {
        Self {
            dir,
            ownership,
            default_mode,
            extension,
            format,
        }
    }

    /// The file for `key` of `domain`.
    pub fn path(&self, domain: &str, key: &SignerKey) -> PathBuf {
        self.dir
            .join(format!("{domain}.{}.{}", key.selector, self.extension))
    }

    /// Installs the file of every key `plan` keeps (the signer's stage step).
    pub fn stage(&self, plan: &SignerPlan) -> Result<()> {
        plan.installed()
            .try_for_each(|key| self.install(&self.path(&plan.domain, key), key))
    }

    /// Deletes the files of the keys `plan` removes (the signer's clean step).
    pub fn clean(&self, plan: &SignerPlan) -> Result<()> {
        plan.removed
            .iter()
            .try_for_each(|key| fsutil::remove_file(&self.path(&plan.domain, key)))
    }

    fn mode(&self) -> u32 {
        self.ownership.mode.map_or(self.default_mode, |mode| mode.0)
    }

    fn owner(&self) -> Result<(Uid, Gid)> {
        let dir = fs::metadata(&self.dir)
            .with_context(|| format!("key directory {}", self.dir.display()))?;
        let uid = match &self.ownership.user {
            Some(name) => {
                User::from_name(name)?
                    .with_context(|| format!("no user {name:?}"))?
                    .uid
            }
            None => Uid::from_raw(dir.uid()),
        };
        let gid = match &self.ownership.group {
            Some(name) => {
                Group::from_name(name)?
                    .with_context(|| format!("no group {name:?}"))?
                    .gid
            }
            None => Gid::from_raw(dir.gid()),
        };
        Ok((uid, gid))
    }

    /// Writes `key` to `path` (unless it is there already), then gives it the signer's owner,
    /// group and mode. The file is created with the mode from the start and renamed into place,
    /// so it is never readable by anyone else.
    fn install(&self, path: &Path, key: &SignerKey) -> Result<()> {
        let bytes = contents(key, self.format)?;
        let mode = self.mode();
        let current = fs::metadata(path).ok();
        let same = fs::read(path).ok().as_deref() == Some(bytes.as_slice())
            && current.is_some_and(|m| m.permissions().mode() & 0o777 == mode);
        if !same {
            fsutil::write_atomic(path, &bytes, mode)?;
        }
        let (uid, gid) = self.owner()?;
        chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", path.display()))
    }

    /// Checks the directory: it exists (or is created 0700), others cannot enter it, and the
    /// owner and group resolve.
    pub fn check(&self) -> Result<()> {
        if !self.dir.exists() {
            fsutil::create_dir(&self.dir)?;
        }
        let mode = fs::metadata(&self.dir)
            .with_context(|| format!("cannot read {}", self.dir.display()))?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            bail!(
                "key directory {} is open to others (mode {:o}): run chmod o-rwx {}",
                self.dir.display(),
                mode & 0o777,
                self.dir.display()
            );
        }
        self.owner().map(drop)
    }
}

/// `key`'s private key file in `format`.
fn contents(key: &SignerKey, format: KeyFormat) -> Result<Zeroizing<Vec<u8>>> {
    let pem = Zeroizing::new(
        fs::read_to_string(&key.source)
            .with_context(|| format!("cannot read private key {}", key.source.display()))?,
    );
    if format == KeyFormat::Ed25519Seed && !key.algorithm.is_rsa() {
        let private = PrivateKey::from_pem(key.algorithm, pem)
            .with_context(|| format!("private key {}", key.source.display()))?;
        return Ok(Zeroizing::new(
            format!("{}\n", private.ed25519_seed_base64()?.as_str()).into_bytes(),
        ));
    }
    Ok(Zeroizing::new(pem.as_bytes().to_vec()))
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

/// The files a signer reads, read once so that an update can be computed from their current
/// text and undone.
pub struct FileSet(Vec<Saved>);

impl FileSet {
    /// Reads `paths` (a missing file reads as empty and is removed again on undo).
    pub fn read(paths: &[&Path]) -> Result<Self> {
        Ok(Self(
            paths
                .iter()
                .map(|path| Saved::read(path))
                .collect::<Result<_>>()?,
        ))
    }

    /// The current text of the `index`th file.
    pub fn text(&self, index: usize) -> &str {
        self.0[index].text.as_deref().unwrap_or_default()
    }

    /// Writes `texts` (one per file, in order; each atomically), then runs `activate` (the
    /// reload and its check). If anything fails, every file is put back as it was and the
    /// error says so.
    pub fn switch(&self, texts: &[String], activate: impl FnOnce() -> Result<()>) -> Result<()> {
        let written = self
            .0
            .iter()
            .zip(texts)
            .try_for_each(|(saved, text)| saved.write(text));
        let Err(err) = written.and_then(|()| activate()) else {
            return Ok(());
        };
        let restored = self.0.iter().try_for_each(Saved::restore);
        if let Err(restore) = restored {
            bail!("{err:#}; restoring the previous files failed too: {restore:#}");
        }
        Err(err.context("the signer was not switched; its previous files are restored"))
    }
}

/// Checks that rotor can replace `file` (by writing a temporary file beside it).
pub fn check_writable(file: &Path) -> Result<()> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .with_context(|| format!("cannot write in {} (for {})", dir.display(), file.display()))
}

/// A table's lines without those `drop` rejects (comments and blank lines always stay),
/// followed by `add`.
pub fn rewrite(table: &str, drop: impl Fn(&[&str]) -> bool, add: &[String]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_activation_puts_every_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "old a\n").unwrap();
        let set = FileSet::read(&[&a, &b]).unwrap();
        let err = set
            .switch(&["new a\n".into(), "new b\n".into()], || {
                assert_eq!(fs::read_to_string(&b).unwrap(), "new b\n");
                bail!("reload failed")
            })
            .unwrap_err();
        assert!(format!("{err:#}").contains("previous files are restored"));
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a\n");
        assert!(!b.exists(), "a file that did not exist is removed again");
    }

    #[test]
    fn ed25519_keys_can_be_written_as_their_seed() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(crate::keys::KeyAlgorithm::Ed25519).unwrap();
        let source = dir.path().join("k.pem");
        fs::write(&source, key.pem()).unwrap();
        let signer_key = SignerKey {
            selector: "s".into(),
            algorithm: crate::keys::KeyAlgorithm::Ed25519,
            source,
        };
        let seed = contents(&signer_key, KeyFormat::Ed25519Seed).unwrap();
        let text = String::from_utf8(seed.to_vec()).unwrap();
        assert_eq!(text.trim().len(), 44, "base64 of 32 bytes: {text}");
        let pem = contents(&signer_key, KeyFormat::Pem).unwrap();
        assert_eq!(pem.as_slice(), key.pem().as_bytes());
    }
}
