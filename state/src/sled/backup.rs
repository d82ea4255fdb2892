//! The copy of the store kept for the day it is found damaged: `<dir>.backup`, replaced
//! atomically so that a crash at any point leaves a complete backup (the old one or the new one).
//! The readers' snapshot (its journal of files, derived from the store) is left out: a store
//! restored from the backup publishes it again when a writer opens it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::sled::durable::{copy_dir_synced, parent, remove_dir_if_present, sync_dir, temp_path};
use crate::snapshot::SNAPSHOT_DIR;

/// Where the backup of the store in `dir` is kept: `<dir>.backup`.
pub(crate) fn backup_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".backup");
    dir.with_file_name(name)
}

/// `<dir>.backup.old`: the previous backup, set aside while the new one is renamed in.
fn old_path(dir: &Path) -> PathBuf {
    let mut name = backup_path(dir).into_os_string();
    name.push(".old");
    PathBuf::from(name)
}

/// Finishes or undoes what an interrupted backup left: a partial copy is removed; a backup set
/// aside whose replacement never arrived is put back. The caller holds the store's lock.
pub(crate) fn tidy(dir: &Path) -> io::Result<()> {
    let backup = backup_path(dir);
    let old = old_path(dir);
    remove_dir_if_present(&temp_path(&backup))?;
    if old.exists() {
        if backup.exists() {
            remove_dir_if_present(&old)?;
        } else {
            fs::rename(&old, &backup)?;
        }
        sync_dir(parent(&backup))?;
    }
    Ok(())
}

/// Copies the closed store in `dir` to its backup (see the module doc). Holds the store's lock
/// meanwhile, so no rotor process opens it during the copy.
pub(crate) fn back_up(dir: &Path) -> Result<(), StoreError> {
    let io = |err: io::Error| StoreError::Io {
        path: dir.to_owned(),
        detail: format!("backup: {err}"),
    };
    // sled locks its `db` file the same way (flock): an open store makes this Busy.
    let lock = File::open(dir.join("db")).map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Busy {
                path: dir.to_owned(),
            });
        }
        Err(fs::TryLockError::Error(err)) => return Err(io(err)),
    }
    tidy(dir).map_err(io)?;
    let backup = backup_path(dir);
    let temp = temp_path(&backup);
    let old = old_path(dir);
    // The readers' snapshot, and where it is first prepared: not copied.
    let snapshot_temp = format!("{SNAPSHOT_DIR}.tmp");
    copy_dir_synced(dir, &temp, &[SNAPSHOT_DIR, &snapshot_temp]).map_err(io)?;
    if backup.exists() {
        fs::rename(&backup, &old).map_err(io)?;
    }
    fs::rename(&temp, &backup).map_err(io)?;
    sync_dir(parent(&backup)).map_err(io)?;
    remove_dir_if_present(&old).map_err(io)?;
    sync_dir(parent(&backup)).map_err(io)
}
