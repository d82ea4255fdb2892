//! A signer's maps or tables: read once, rewritten as one set (each file atomically, with its
//! owner, group and mode), and all put back if the reload or the check that follows fails.

use std::cell::Cell;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rotor_common::{Interval, workers};

use crate::command;
use crate::error::{Result, SignerError};
use crate::fs as fsutil;

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
    /// by rename, so it would no longer be one); a missing file is created with `new_mode`.
    fn read(path: &Path, new_mode: u32) -> Result<Self> {
        let Some(mut file) = fsutil::open_no_follow(path)? else {
            return Ok(Self {
                path: path.to_owned(),
                text: None,
                mode: new_mode,
                owner: None,
            });
        };
        let mut read = || -> std::io::Result<_> {
            let meta = file.metadata()?;
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Ok((text, meta))
        };
        let (text, meta) = read().map_err(|err| SignerError::at("read", path, err))?;
        Ok(Self {
            path: path.to_owned(),
            text: Some(text),
            mode: meta.mode() & 0o7777,
            owner: Some((meta.uid(), meta.gid())),
        })
    }

    /// Writes `text` (if it changed) with the file's mode, owner and group.
    /// `text` prepared beside the file (see [`fsutil::prepare_atomic`]), unless the file holds
    /// it already.
    fn prepare(&self, text: &str) -> Result<Option<fsutil::Prepared>> {
        if self.text.as_deref() == Some(text) {
            return Ok(None);
        }
        fsutil::prepare_atomic(&self.path, text.as_bytes(), self.mode, self.owner).map(Some)
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

/// Rewrites the one file at `path` to what `update` makes of its current text (see
/// [`FileSet::switch`]: atomically, and put back as it was if the reload fails), then runs the
/// optional `reload` command, killed after `timeout` (default 60s).
pub fn switch_file(
    path: &Path,
    update: impl FnOnce(&str) -> Result<String>,
    reload: Option<&String>,
    timeout: Option<Interval>,
) -> Result<()> {
    let files = FileSet::read(&[path])?;
    let text = update(files.text(0))?;
    files.switch(&[text], || {
        let timeout = command::timeout(timeout);
        command::run_optional("reload", reload, timeout)
    })
}

/// The files a signer reads, read once so that an update can be computed from their current
/// text and undone.
pub struct FileSet(Vec<Saved>);

impl FileSet {
    /// Reads `paths` (a missing file reads as empty, is created 0644 and removed again on
    /// undo; a link is refused).
    pub fn read(paths: &[&Path]) -> Result<Self> {
        let files: Vec<(&Path, u32)> = paths.iter().map(|path| (*path, 0o644)).collect();
        Self::read_with_modes(&files)
    }

    /// [`FileSet::read`], each missing file to be created with its own mode.
    pub fn read_with_modes(files: &[(&Path, u32)]) -> Result<Self> {
        Ok(Self(
            files
                .iter()
                .map(|(path, mode)| Saved::read(path, *mode))
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
        // Each new text written to a temporary file and flushed, many at once (each is a file
        // created); then put in place in order, one after the other, each rename flushed
        // before the next: a signer's crash safety may rest on the order of its files
        // (OpenDKIM's KeyTable before its SigningTable), which a crash between two must find
        // kept. A failure before every file is prepared leaves them all as they were.
        let pairs: Vec<(&Saved, &String)> = self.0.iter().zip(texts).collect();
        let prepared = workers::map(
            &pairs,
            workers::threads(workers::DISK_EXTRA),
            |(saved, text)| saved.prepare(text),
        );
        let written = prepared
            .into_iter()
            .collect::<Result<Vec<_>>>()
            .and_then(|prepared| {
                prepared
                    .into_iter()
                    .flatten()
                    .try_for_each(fsutil::Prepared::place)
            });
        let Err(err) = written.and_then(|()| activate()) else {
            return Ok(());
        };
        let restored = self.0.iter().try_for_each(Saved::restore);
        if let Err(restore) = restored {
            return Err(SignerError::NotRestored {
                failed: Box::new(err),
                step: "restoring the previous files",
                error: Box::new(restore),
            });
        }
        Err(SignerError::Restored(Box::new(err)))
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
                Err(err) => Err(SignerError::NotRestored {
                    failed: Box::new(failed),
                    step: "reloading the restored files",
                    error: Box::new(err),
                }),
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
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).map_err(|err| {
        SignerError::io(
            format!("cannot write in {} (for {})", dir.display(), file.display()),
            err,
        )
    })
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
    use std::fs;

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
                Err(SignerError::Setting("reload failed".into()))
            })
            .unwrap_err();
        assert!(format!("{err:#}").contains("previous files are restored"));
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a\n");
        assert!(!b.exists(), "a file that did not exist is removed again");
    }

    #[test]
    fn a_file_that_cannot_be_written_puts_every_file_back_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<std::path::PathBuf> =
            (0..8).map(|i| dir.path().join(format!("t{i}"))).collect();
        for file in &files {
            fs::write(file, "old\n").unwrap();
        }
        // The fifth file's directory is gone by the time it is written.
        let gone = dir.path().join("gone");
        fs::create_dir(&gone).unwrap();
        let mut paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        let lost = gone.join("t");
        paths.insert(4, &lost);
        let set = FileSet::read(&paths).unwrap();
        fs::remove_dir(&gone).unwrap();
        let texts = vec!["new\n".to_string(); paths.len()];
        let err = set
            .switch(&texts, || panic!("nothing is activated"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("gone"), "{err:#}");
        for file in &files {
            assert_eq!(
                fs::read_to_string(file).unwrap(),
                "old\n",
                "{}",
                file.display()
            );
        }
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn a_rewrite_and_a_restore_keep_owner_group_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("table");
        fs::write(&table, "old\n").unwrap();
        std::os::unix::fs::chown(&table, Some(0), Some(65534)).unwrap();
        std::fs::set_permissions(&table, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
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
            .switch(&["newer\n".into()], || {
                Err(SignerError::Setting("reload failed".into()))
            })
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
