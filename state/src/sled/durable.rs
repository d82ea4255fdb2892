//! Files and directories written so that a crash leaves the old content or the new one, and
//! what was written survives a power loss once the call returns.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `<path>.tmp`: where a file or directory is prepared before it is renamed into place.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` through a fresh temporary file and a rename. With `sync`, the
/// file is flushed to disk before the rename and the directory after it.
pub(crate) fn replace_file(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let mut file = create_temp(path)?;
    file.write_all(bytes)?;
    put_in_place(file, path, sync)
}

/// A fresh temporary file for `path` (at [`temp_path`]), to be written and then renamed over
/// `path` by [`put_in_place`].
pub(crate) fn create_temp(path: &Path) -> io::Result<File> {
    let temp = temp_path(path);
    remove_file_if_present(&temp)?;
    // A new file: whatever lay at the temporary name (even a link) is not written through.
    OpenOptions::new().write(true).create_new(true).open(&temp)
}

/// Renames the temporary file `file` of `path` (from [`create_temp`]) over `path`; with
/// `sync`, flushes the file first and the directory after.
pub(crate) fn put_in_place(file: File, path: &Path, sync: bool) -> io::Result<()> {
    if sync {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(temp_path(path), path)?;
    if sync {
        sync_dir(parent(path))?;
    }
    Ok(())
}

/// The directory holding `path`.
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Flushes a directory's entries (creations, renames, removals) to disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file (or a link itself, never what it points to); absent is fine.
pub(crate) fn remove_file_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Removes a directory tree (links inside are removed, not followed); absent is fine.
pub(crate) fn remove_dir_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Copies the directory tree `from` to the new directory `to`, every file and directory
/// flushed to disk, leaving out the entries of `from` itself named in `skip`. Refuses anything
/// but plain files and directories (a link is not followed).
pub(crate) fn copy_dir_synced(from: &Path, to: &Path, skip: &[&str]) -> io::Result<()> {
    fs::create_dir(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if skip.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir_synced(&source, &target, &[])?;
        } else if kind.is_file() {
            fs::copy(&source, &target)?;
            File::open(&target)?.sync_all()?;
        } else {
            return Err(io::Error::other(format!(
                "{} is neither a file nor a directory: not copied",
                source.display()
            )));
        }
    }
    sync_dir(to)
}
