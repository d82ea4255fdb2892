//! The conformance battery every signer adapter runs ([`battery`]), and one backend per adapter:
//! the adapter's real signer (OpenDKIM, rspamd, Exim) or its documented format (KumoMTA,
//! `type: files` with its verify command), set up on loopback in a scratch directory.

pub mod battery;
pub mod exim;
pub mod files;
pub mod kumomta;
pub mod opendkim;
pub mod rspamd;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rotor_signers::SignerKey;

/// A user and a group that are neither root nor rotor's (the tests run as root).
pub const NOBODY: (&str, u32) = ("nobody", 65534);
/// Nobody's group.
pub const NOGROUP: (&str, u32) = ("nogroup", 65534);

/// What the battery needs from the signer behind an adapter.
pub trait Backend {
    /// The adapter's settings as YAML (with `type:`); with `failing`, its reload, configtest or
    /// verify fails.
    fn settings(&self, failing: bool) -> String;

    /// The files rotor rewrites for `domain` (tables, maps, rendered files).
    fn tables(&self, domain: &str) -> Vec<PathBuf>;

    /// The files of the operator's that hold rows of other domains (which must survive).
    fn operator_files(&self) -> Vec<PathBuf>;

    /// The key directory.
    fn key_dir(&self) -> PathBuf;

    /// The owner, group and mode the key files must get with [`Backend::settings`].
    fn key_owner(&self) -> (u32, u32, u32);

    /// The group an operator gives the tables (one the signer can read them through).
    fn table_group(&self) -> u32;

    /// Whether the signer, asked once right now, signs mail of `domain` with exactly `key` (its
    /// signature verifies against `key.source`): `Err` says what it did instead.
    fn signs(&self, domain: &str, key: &SignerKey) -> Result<(), String>;
}

/// A scratch directory the signers accept (no writable ancestors; searchable by Exim's user).
pub fn scratch() -> tempfile::TempDir {
    rotor_testkit::scratch_in(env!("CARGO_TARGET_TMPDIR"))
}

/// A directory only its owner (root) may enter.
pub fn private_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
}

/// Writes an operator's file with `owner`'s ids and `mode`.
pub fn write_owned(path: &Path, text: &str, (uid, gid): (u32, u32), mode: u32) {
    fs::write(path, text).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A file as a reader sees it: contents, owner, group, mode, and whether it is a plain file with
/// one name (`None`: nothing there).
pub type Seen = Option<(Vec<u8>, u32, u32, u32, bool)>;

/// What is at `path`, without following a link.
pub fn seen(path: &Path) -> Seen {
    let meta = fs::symlink_metadata(path).ok()?;
    let plain = meta.file_type().is_file() && meta.nlink() == 1;
    Some((
        fs::read(path).unwrap_or_default(),
        meta.uid(),
        meta.gid(),
        meta.mode() & 0o7777,
        plain,
    ))
}

/// Whether `message` carries exactly one DKIM signature, by `key` for `domain`, that verifies
/// (dkimpy) against the record of `key.source`.
pub fn signed_by(message: &str, domain: &str, key: &SignerKey) -> Result<(), String> {
    let verdicts = rotor_testkit::exim::verify(message, &[(&key.selector, domain, &key.source)]);
    match verdicts.as_slice() {
        [one] if one.domain == domain && one.selector == key.selector && one.verified => Ok(()),
        [] => Err(format!("{domain} is not signed")),
        other => Err(format!(
            "{domain} is signed, but not with {} alone: {other:?}",
            key.selector
        )),
    }
}

/// The test message of `domain`, LF line ends.
pub fn probe_message(domain: &str) -> String {
    format!(
        "From: probe@{domain}\nTo: someone@example.net\nSubject: rotor probe\nDate: Mon, 30 Nov 2026 12:00:00 +0000\nMessage-ID: <probe@{domain}>\n\nHello.\n"
    )
}
