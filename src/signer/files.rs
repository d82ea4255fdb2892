//! What every signer adapter does with files: key files installed with the signer's owner,
//! group and mode, and a signer's maps or tables switched as one set, all put back if the reload
//! or the check that follows fails.

use std::cell::Cell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::unistd::{Gid, Group, Uid, User};
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
        let owner = self.owner()?;
        plan.installed()
            .try_for_each(|key| self.install(&self.path(&plan.domain, key), key, owner))
    }

    /// Deletes the files of the keys `plan` removes (the signer's clean step).
    pub fn clean(&self, plan: &SignerPlan) -> Result<()> {
        plan.removed
            .iter()
            .try_for_each(|key| fsutil::remove_file(&self.path(&plan.domain, key)))
    }

    /// Removes rotor's temporary files left in the key directory by a run that died.
    pub fn sweep(&self) -> Result<()> {
        fsutil::sweep_temp_files(&self.dir).map(drop)
    }

    fn mode(&self) -> u32 {
        self.ownership.mode.map_or(self.default_mode, |mode| mode.0)
    }

    /// The signer's user and group, as configured (`None`: not configured).
    fn configured(&self) -> Result<(Option<Uid>, Option<Gid>)> {
        let uid = match &self.ownership.user {
            Some(name) => Some(
                User::from_name(name)?
                    .with_context(|| format!("no user {name:?}"))?
                    .uid,
            ),
            None => None,
        };
        let gid = match &self.ownership.group {
            Some(name) => Some(
                Group::from_name(name)?
                    .with_context(|| format!("no group {name:?}"))?
                    .gid,
            ),
            None => None,
        };
        Ok((uid, gid))
    }

    /// The owner and group key files get (by default, those of the key directory), once the
    /// directory is found safe: only rotor, root and the signer can write in it.
    fn owner(&self) -> Result<(Uid, Gid)> {
        let dir = fs::metadata(&self.dir)
            .with_context(|| format!("key directory {}", self.dir.display()))?;
        if !dir.is_dir() {
            bail!("key directory {} is not a directory", self.dir.display());
        }
        let (user, group) = self.configured()?;
        let show = self.dir.display();
        let mode = dir.mode() & 0o7777;
        if mode & 0o007 != 0 {
            bail!(
                "key directory {show} is open to others (mode {:o}): run chmod o-rwx {show}",
                mode & 0o777,
            );
        }
        let owner = Uid::from_raw(dir.uid());
        // Without `user:`, the directory's owner is the signer's user (its keys are given to it).
        let trusted = [
            Some(Uid::effective()),
            Some(Uid::from_raw(0)),
            user.or(Some(owner)),
        ];
        if !trusted.contains(&Some(owner)) {
            bail!(
                "key directory {show} is owned by uid {owner}, neither rotor, root nor the signer's user{}: run chown root {show} (or set `user:` to the signer's user)",
                self.ownership
                    .user
                    .as_ref()
                    .map(|name| format!(" ({name})"))
                    .unwrap_or_default()
            );
        }
        let dir_group = Gid::from_raw(dir.gid());
        if mode & 0o020 != 0 && group != Some(dir_group) {
            bail!(
                "key directory {show} is writable by its group (gid {dir_group}), which is not the signer's `group:`: run chmod g-w {show} (or set `group:` to that group if only the signer is in it)"
            );
        }
        Ok((user.unwrap_or(owner), group.unwrap_or(dir_group)))
    }

    /// Writes `key` to `path` (unless it is there already, with the signer's owner, group and
    /// mode). The file is created with its mode and owner from the start, then renamed into
    /// place: it is never readable by anyone else, and nothing is changed through its path (a
    /// link planted there is replaced, never followed).
    fn install(&self, path: &Path, key: &SignerKey, (uid, gid): (Uid, Gid)) -> Result<()> {
        let bytes = contents(key, self.format)?;
        let mode = self.mode();
        if !self.installed(path, &bytes, mode, (uid, gid)) {
            fsutil::write_atomic_owned(path, &bytes, mode, Some((uid.as_raw(), gid.as_raw())))?;
        }
        Ok(())
    }

    /// Whether `path` is a regular file (not a link, no other name) holding `bytes` with this
    /// mode and owner.
    fn installed(&self, path: &Path, bytes: &[u8], mode: u32, (uid, gid): (Uid, Gid)) -> bool {
        let Ok(Some(mut file)) = fsutil::open_no_follow(path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        // A file with another name somewhere (a hard link someone made) is replaced, never
        // kept: rotor's copy has one name.
        if meta.mode() & 0o7777 != mode
            || meta.uid() != uid.as_raw()
            || meta.gid() != gid.as_raw()
            || meta.nlink() != 1
        {
            return false;
        }
        let mut current = Zeroizing::new(Vec::new());
        file.read_to_end(&mut current).is_ok() && current.as_slice() == bytes
    }

    /// Checks the directory: it exists (or is created 0700), others cannot enter it, only
    /// rotor, root and the signer can write in it, and the owner and group resolve.
    pub fn check(&self) -> Result<()> {
        if !self.dir.exists() {
            fsutil::create_dir(&self.dir)?;
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

/// A file's contents, mode, owner and group before rotor changed it.
struct Saved {
    path: PathBuf,
    text: Option<String>,
    mode: u32,
    /// Its owner and group (`None`: it did not exist).
    owner: Option<(u32, u32)>,
}

impl Saved {
    /// Reads `path` without following a link (a link there is refused: rotor replaces the file
    /// by rename, so it would no longer be one).
    fn read(path: &Path) -> Result<Self> {
        let Some(mut file) = fsutil::open_no_follow(path)? else {
            return Ok(Self {
                path: path.to_owned(),
                text: None,
                mode: 0o644,
                owner: None,
            });
        };
        let mut read = || -> std::io::Result<_> {
            let meta = file.metadata()?;
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Ok((text, meta))
        };
        let (text, meta) = read().with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            text: Some(text),
            mode: meta.mode() & 0o7777,
            owner: Some((meta.uid(), meta.gid())),
        })
    }

    /// Writes `text` (if it changed) with the file's mode, owner and group.
    fn write(&self, text: &str) -> Result<()> {
        if self.text.as_deref() != Some(text) {
            fsutil::write_atomic_owned(&self.path, text.as_bytes(), self.mode, self.owner)?;
        }
        Ok(())
    }

    /// Puts the file back as it was, mode, owner and group included.
    fn restore(&self) -> Result<()> {
        match &self.text {
            Some(text) => {
                fsutil::write_atomic_owned(&self.path, text.as_bytes(), self.mode, self.owner)
            }
            None => fsutil::remove_file(&self.path),
        }
    }
}

/// The files a signer reads, read once so that an update can be computed from their current
/// text and undone.
pub struct FileSet(Vec<Saved>);

impl FileSet {
    /// Reads `paths` (a missing file reads as empty and is removed again on undo; a link is
    /// refused).
    pub fn read(paths: &[&Path]) -> Result<Self> {
        Ok(Self(
            paths
                .iter()
                .map(|path| Saved::read(path))
                .collect::<Result<_>>()?,
        ))
    }

    /// The directories the files are in (where a run that died may have left temporary files).
    pub fn dirs(paths: &[&Path]) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = paths
            .iter()
            .map(|path| {
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned()
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
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

    /// [`FileSet::switch`] with `reload` then `verify` as the activation. If either fails
    /// once the reload has run, the signer is reloaded again once the previous files are back,
    /// so it reads them.
    pub fn switch_verified(
        &self,
        texts: &[String],
        reload: impl Fn() -> Result<()>,
        verify: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let reloaded = Cell::new(false);
        let result = self.switch(texts, || {
            reloaded.set(true);
            reload()?;
            verify()
        });
        match result {
            Err(failed) if reloaded.get() => match reload() {
                Ok(()) => Err(failed),
                Err(err) => bail!("{failed:#}; reloading the restored files failed too: {err:#}"),
            },
            result => result,
        }
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

    fn key_files(dir: &Path, user: Option<&str>, group: Option<&str>) -> KeyFiles {
        let ownership = Ownership::new(&user.map(Into::into), &group.map(Into::into), None);
        KeyFiles::new(dir.to_owned(), ownership, 0o600, "pem", KeyFormat::Pem)
    }

    fn plan(dir: &Path) -> SignerPlan {
        SignerPlan {
            domain: "example.com".into(),
            signing: vec![crate::signer::test_key(
                dir,
                "s1",
                crate::keys::KeyAlgorithm::Rsa2048,
            )],
            kept: vec![],
            removed: vec![],
        }
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn key_directories_others_can_write_are_refused_by_stage() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        fsutil::create_dir(&keys).unwrap();
        let plan = plan(dir.path());
        chmod(&keys, 0o703);
        let err = key_files(&keys, None, None).stage(&plan).unwrap_err();
        assert!(err.to_string().contains("chmod o-rwx"), "{err}");
        chmod(&keys, 0o770);
        let err = key_files(&keys, None, None).stage(&plan).unwrap_err();
        assert!(err.to_string().contains("chmod g-w"), "{err}");
        // A group-writable directory is fine when its group is the signer's.
        std::os::unix::fs::chown(&keys, Some(0), Some(65534)).unwrap();
        key_files(&keys, None, Some("nogroup"))
            .stage(&plan)
            .unwrap();
        // Owned by a user that is neither rotor, root nor the signer's.
        chmod(&keys, 0o700);
        std::os::unix::fs::chown(&keys, Some(65534), Some(0)).unwrap();
        let err = key_files(&keys, Some("root"), None)
            .stage(&plan)
            .unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        key_files(&keys, Some("nobody"), None).stage(&plan).unwrap();
        assert_eq!(
            fs::read_dir(&keys).unwrap().count(),
            1,
            "only the accepted stages wrote"
        );
    }

    #[test]
    fn a_link_where_a_key_goes_is_replaced_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        fsutil::create_dir(&keys).unwrap();
        let plan = plan(dir.path());
        let files = key_files(&keys, Some("nobody"), Some("nogroup"));
        let path = files.path("example.com", &plan.signing[0]);
        // A target with the key's very bytes and mode: nothing tells it apart but the link.
        let target = dir.path().join("target");
        fs::copy(&plan.signing[0].source, &target).unwrap();
        chmod(&target, 0o600);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        files.stage(&plan).unwrap();
        let target_meta = fs::metadata(&target).unwrap();
        assert_eq!((target_meta.uid(), target_meta.gid()), (0, 0));
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 65534, 0o600)
        );
    }

    #[test]
    fn a_rewrite_and_a_restore_keep_owner_group_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("table");
        fs::write(&table, "old\n").unwrap();
        std::os::unix::fs::chown(&table, Some(0), Some(65534)).unwrap();
        chmod(&table, 0o640);
        let kept = || {
            let meta = fs::metadata(&table).unwrap();
            (meta.uid(), meta.gid(), meta.mode() & 0o777)
        };
        FileSet::read(&[&table])
            .unwrap()
            .switch(&["new\n".into()], || Ok(()))
            .unwrap();
        assert_eq!(kept(), (0, 65534, 0o640));
        FileSet::read(&[&table])
            .unwrap()
            .switch(&["newer\n".into()], || bail!("reload failed"))
            .unwrap_err();
        assert_eq!(fs::read_to_string(&table).unwrap(), "new\n");
        assert_eq!(kept(), (0, 65534, 0o640));
    }

    #[test]
    fn a_table_that_is_a_link_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, "SECRET").unwrap();
        let table = dir.path().join("table");
        std::os::unix::fs::symlink(&secret, &table).unwrap();
        let err = FileSet::read(&[&table]).err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
