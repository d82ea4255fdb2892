//! Files written so that no reader ever sees a partial file, and private files that are never
//! readable by others, not even for an instant.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::libc;

use crate::crashpoint;
use crate::error::{Result, SignerError};

/// Creates `dir` (and its parents) with mode 0700 if missing.
pub fn create_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| SignerError::at("create directory", dir, err))
}

/// Creates `dir` (and its parents) with mode 0700 if missing; refuses an existing one that group
/// or others can enter.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    create_dir(dir)?;
    let mode = fs::metadata(dir)
        .map_err(|err| SignerError::at("read", dir, err))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SignerError::Unsafe(format!(
            "{} is open to group or others (mode {:o}): private keys need a 0700 directory; run chmod 700 {}",
            dir.display(),
            mode & 0o777,
            dir.display()
        )));
    }
    Ok(())
}

/// [`ensure_private_dir`] for a directory of rotor's own (its key directories): besides being
/// closed to group and others, it must be a real directory, not a link, and owned by the user
/// rotor runs as, so nobody else can have placed or swapped a key in it.
pub fn ensure_own_private_dir(dir: &Path) -> Result<()> {
    ensure_private_dir(dir)?;
    let meta = fs::symlink_metadata(dir).map_err(|err| SignerError::at("read", dir, err))?;
    if !meta.is_dir() {
        return Err(SignerError::Unsafe(format!(
            "{} is a link, not a directory: rotor keeps private keys only in a directory of its own",
            dir.display()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(SignerError::Unsafe(format!(
            "{} belongs to uid {}, not to rotor's user (uid {me}): another user could have placed a key there; run chown {me} {}",
            dir.display(),
            meta.uid(),
            dir.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory, created with `mode`
/// from the start, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_owned(path, bytes, mode, None)
}

/// [`write_atomic`], the file also given `owner` (uid, gid) before it is renamed into place.
///
/// Owner and mode are set on the temporary file's descriptor, so nothing is changed through a
/// path afterwards: whoever can write the directory cannot turn the file into a link to another
/// one in between. The temporary file is created exclusively and never through a link.
pub fn write_atomic_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    prepare_atomic(path, bytes, mode, owner)?.place()
}

/// A file's new content written and flushed beside it by [`prepare_atomic`], not yet in
/// place: [`Prepared::place`] renames it over the file. Dropped unplaced, it is removed.
#[derive(Debug)]
pub struct Prepared {
    path: PathBuf,
    temp: PathBuf,
    placed: bool,
}

/// The first half of [`write_atomic_owned`]: `bytes` in a new temporary file beside `path`,
/// with `mode` and `owner`, flushed to disk; `path` itself untouched until
/// [`Prepared::place`]. Many files can be prepared at once and then placed in order.
pub fn prepare_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<Prepared> {
    let name = path
        .file_name()
        .ok_or_else(|| SignerError::Setting(format!("{} names no file", path.display())))?;
    let prepared = Prepared {
        path: path.to_owned(),
        temp: parent(path).join(format!(
            ".{}{TEMP_MARK}{}",
            name.to_string_lossy(),
            std::process::id()
        )),
        placed: false,
    };
    let temp = &prepared.temp;
    let write = || -> io::Result<()> {
        // A leftover of this pid (unlink removes a link itself, never its target).
        let _ = fs::remove_file(temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(temp)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        // The umask may have narrowed the mode, and a chown clears set-id bits: set exactly
        // what was asked.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        crashpoint::hit("write", "temp");
        Ok(())
    };
    // Failed: the temporary file goes with `prepared`.
    write().map_err(|err| SignerError::at("write", path, err))?;
    Ok(prepared)
}

impl Prepared {
    /// Renames the prepared file over its path and flushes the directory: once it returns,
    /// the new content is in place for good, before anything placed after it.
    pub fn place(mut self) -> Result<()> {
        let placed = fs::rename(&self.temp, &self.path).and_then(|()| {
            self.placed = true;
            crashpoint::hit("write", "renamed");
            fs::File::open(parent(&self.path))?.sync_all()
        });
        placed.map_err(|err| SignerError::at("write", &self.path, err))
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// What names rotor's temporary files: `.<name>.rotor-tmp-<pid>`.
const TEMP_MARK: &str = ".rotor-tmp-";

/// How old a temporary file of a running process must be before it counts as left over.
const TEMP_AGE: Duration = Duration::from_secs(60);

/// Removes rotor's temporary files left in `dir` by a run that died between creating and
/// renaming them (they may hold a private key); returns how many were removed.
///
/// Only regular files named as [`write_atomic`] names them are removed (never a link, never
/// followed), and only those no live rotor is writing: the pid in the name is not running, or
/// the file is over a minute old. A missing directory has nothing to sweep.
pub fn sweep_temp_files(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(SignerError::at("read", dir, err)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|err| SignerError::at("read", dir, err))?;
        let name = entry.file_name();
        let Some(pid) = temp_pid(&name.to_string_lossy()) else {
            continue;
        };
        // DirEntry::metadata does not follow a link.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > TEMP_AGE);
        if old || !running(pid) {
            remove_file(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The pid in a name of rotor's temporary files.
fn temp_pid(name: &str) -> Option<i32> {
    let (stem, pid) = name.rsplit_once(TEMP_MARK)?;
    if !stem.starts_with('.') || stem.len() < 2 || pid.is_empty() {
        return None;
    }
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|pid| *pid > 0)
}

/// Whether a process `pid` exists.
fn running(pid: i32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The directory `path` is in.
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Opens `path` for reading without following a link: `None` if nothing is there, an error if
/// it is a link or not a regular file.
pub fn open_no_follow(path: &Path) -> Result<Option<fs::File>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(SignerError::Unsafe(format!(
                "{} is a symbolic link: rotor does not follow links where it writes; name the real file",
                path.display()
            )));
        }
        Err(err) => return Err(SignerError::at("open", path, err)),
    };
    let meta = file
        .metadata()
        .map_err(|err| SignerError::at("read", path, err))?;
    if !meta.file_type().is_file() {
        return Err(SignerError::Unsafe(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Some(file))
}

/// Removes `path`; a file that is already gone is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(SignerError::at("remove", path, err))
        }
        _ => Ok(()),
    }
}

/// The file's contents, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(SignerError::at("read", path, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_get_exactly_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys/example.com");
        ensure_private_dir(&keys).unwrap();
        assert_eq!(
            fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let key = keys.join("k.pem");
        write_atomic(&key, b"secret", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_atomic(&key, b"again", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&key).unwrap(), "again");
        assert_eq!(
            fs::read_dir(&keys).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn an_open_key_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn removing_a_missing_file_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        remove_file(&dir.path().join("gone")).unwrap();
        assert_eq!(read_optional(&dir.path().join("gone")).unwrap(), None);
    }

    #[test]
    fn left_over_temporary_files_are_swept_and_nothing_else() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let own = std::process::id();
        let path = |name: &str| dir.path().join(name);
        // Left by a rotor that died: removed.
        fs::write(path(&format!(".k.pem.rotor-tmp-{dead_pid}")), "secret").unwrap();
        // This process's, old: a leftover too.
        let old = path(&format!(".old.pem.rotor-tmp-{own}"));
        fs::write(&old, "secret").unwrap();
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        // Being written by a live rotor: kept.
        fs::write(path(&format!(".live.pem.rotor-tmp-{own}")), "secret").unwrap();
        // Not rotor's, or not a plain file: kept, and a link's target untouched.
        fs::write(path("k.pem"), "key").unwrap();
        fs::write(path(&format!("x.rotor-tmp-{dead_pid}")), "x").unwrap();
        fs::write(path(&format!(".y.rotor-tmp-{dead_pid}x")), "y").unwrap();
        symlink(path("k.pem"), path(&format!(".l.rotor-tmp-{dead_pid}"))).unwrap();
        fs::create_dir(path(&format!(".d.rotor-tmp-{dead_pid}"))).unwrap();

        assert_eq!(sweep_temp_files(dir.path()).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            format!(".d.rotor-tmp-{dead_pid}"),
            format!(".l.rotor-tmp-{dead_pid}"),
            format!(".live.pem.rotor-tmp-{own}"),
            format!(".y.rotor-tmp-{dead_pid}x"),
            "k.pem".to_string(),
            format!("x.rotor-tmp-{dead_pid}"),
        ];
        want.sort();
        assert_eq!(left, want);
        assert_eq!(fs::read_to_string(path("k.pem")).unwrap(), "key");
        assert_eq!(sweep_temp_files(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn an_owned_write_replaces_a_link_and_never_follows_it() {
        use std::os::unix::fs::{MetadataExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let path = dir.path().join("key.pem");
        symlink(&target, &path).unwrap();
        write_atomic_owned(&path, b"key", 0o600, Some((65534, 65534))).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 65534, 0o600)
        );
        assert_eq!(fs::metadata(&target).unwrap().uid(), 0);
        let err = open_no_follow(&path.with_file_name("link"))
            .map(|_| ())
            .and_then(|()| {
                symlink(&target, dir.path().join("link")).unwrap();
                open_no_follow(&dir.path().join("link")).map(drop)
            })
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
