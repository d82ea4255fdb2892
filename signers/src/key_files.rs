//! Key files: each key of a plan installed where the signer reads keys, in the form it reads,
//! with its owner, group and mode from the start; deleted again when the key leaves.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};
use zeroize::Zeroizing;

use rotor_common::FileMode;
use rotor_keys::PrivateKey;

use crate::error::{Result, SignerError};
use crate::{SignerKey, SignerPlan, fs as fsutil};

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
        let lookup = |what: &str, name: &str, err: nix::Error| {
            SignerError::io(format!("cannot look up the {what} {name:?}"), err)
        };
        let missing = |what: &str, name: &str| SignerError::Setting(format!("no {what} {name:?}"));
        let uid = match &self.ownership.user {
            Some(name) => Some(
                User::from_name(name)
                    .map_err(|err| lookup("user", name, err))?
                    .ok_or_else(|| missing("user", name))?
                    .uid,
            ),
            None => None,
        };
        let gid = match &self.ownership.group {
            Some(name) => Some(
                Group::from_name(name)
                    .map_err(|err| lookup("group", name, err))?
                    .ok_or_else(|| missing("group", name))?
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
            .map_err(|err| SignerError::io(format!("key directory {}", self.dir.display()), err))?;
        if !dir.is_dir() {
            return Err(SignerError::Unsafe(format!(
                "key directory {} is not a directory",
                self.dir.display()
            )));
        }
        let (user, group) = self.configured()?;
        let show = self.dir.display();
        let mode = dir.mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(SignerError::Unsafe(format!(
                "key directory {show} is open to others (mode {:o}): run chmod o-rwx {show}",
                mode & 0o777,
            )));
        }
        let owner = Uid::from_raw(dir.uid());
        // Without `user:`, the directory's owner is the signer's user (its keys are given to it).
        let trusted = [
            Some(Uid::effective()),
            Some(Uid::from_raw(0)),
            user.or(Some(owner)),
        ];
        if !trusted.contains(&Some(owner)) {
            return Err(SignerError::Unsafe(format!(
                "key directory {show} is owned by uid {owner}, neither rotor, root nor the signer's user{}: run chown root {show} (or set `user:` to the signer's user)",
                self.ownership
                    .user
                    .as_ref()
                    .map(|name| format!(" ({name})"))
                    .unwrap_or_default()
            )));
        }
        let dir_group = Gid::from_raw(dir.gid());
        if mode & 0o020 != 0 && group != Some(dir_group) {
            return Err(SignerError::Unsafe(format!(
                "key directory {show} is writable by its group (gid {dir_group}), which is not the signer's `group:`: run chmod g-w {show} (or set `group:` to that group if only the signer is in it)"
            )));
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
            .map_err(|err| SignerError::at("read private key", &key.source, err))?,
    );
    if format == KeyFormat::Ed25519Seed && !key.algorithm.is_rsa() {
        let unreadable = |error| SignerError::Key {
            path: key.source.display().to_string(),
            error,
        };
        let private = PrivateKey::from_pem(key.algorithm, pem).map_err(unreadable)?;
        let seed = private.ed25519_seed_base64().map_err(unreadable)?;
        return Ok(Zeroizing::new(format!("{}\n", seed.as_str()).into_bytes()));
    }
    Ok(Zeroizing::new(pem.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_can_be_written_as_their_seed() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate(rotor_common::KeyAlgorithm::Ed25519).unwrap();
        let source = dir.path().join("k.pem");
        fs::write(&source, key.pem()).unwrap();
        let signer_key = SignerKey {
            selector: "s".into(),
            algorithm: rotor_common::KeyAlgorithm::Ed25519,
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
            signing: vec![crate::test_key(
                dir,
                "s1",
                rotor_common::KeyAlgorithm::Rsa2048,
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
}
