//! Reading report files safely (shared by `dir` and `maildir`): regular files only, never
//! through a link, at most a given size.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `O_NOFOLLOW`: a link where a report is expected is not followed.
const NOFOLLOW: i32 = 0o400_000;

/// The contents of the regular file `path`, or why it is skipped (a link, not a regular file,
/// over `max` bytes, unreadable).
pub(crate) fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW)
        .open(path)
        .map_err(|err| format!("cannot open it (a link is not followed): {err}"))?;
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot read it: {err}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > max as u64 {
        return Err(format!("{} bytes, over the limit of {max}", meta.len()));
    }
    let mut bytes = Vec::new();
    File::take(file, max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read it: {err}"))?;
    if bytes.len() > max {
        return Err(format!("over the limit of {max} bytes"));
    }
    Ok(bytes)
}

/// The names of the entries of `dir` that are regular files (links and hidden files left out),
/// sorted.
pub(crate) fn regular_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
