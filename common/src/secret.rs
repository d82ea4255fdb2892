//! Secrets (TSIG keys, API tokens, passwords): files checked when the config is read, so one
//! that another user could read or replace is refused before rotor uses it, and tokens read
//! from such a file or from the environment only when needed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Uid, User};
use zeroize::Zeroizing;

/// Checks that `path` (`what` it holds) is a regular file owned by the running user or root,
/// that neither its group nor other users may read or write; the error says how to fix it.
pub fn check(path: &Path, what: &str) -> Result<(), String> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|err| format!("cannot read {what} {shown}: {err}"))?;
    if !meta.is_file() {
        return Err(format!("{what} {shown} is not a regular file"));
    }
    let me = Uid::effective();
    if meta.uid() != me.as_raw() && meta.uid() != 0 {
        let name = User::from_uid(me)
            .ok()
            .flatten()
            .map_or_else(|| me.to_string(), |user| user.name);
        return Err(format!(
            "{what} {shown} is owned by uid {}, neither rotor's user ({name}) nor root, who could replace it: run `chown {name} {shown}`",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {shown} has mode {mode:04o}: other users may read or change the secret; run `chmod 600 {shown}`"
        ));
    }
    Ok(())
}

/// A token from `file` (checked with [`check`]; surrounding whitespace trimmed), else from the
/// environment variable `env` (or `default_env`). Read when needed, so that commands that call
/// no API (`rotor status`) work without it.
pub fn read_token(
    default_env: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Zeroizing<String>, String> {
    if let Some(file) = file {
        check(file, "the API token file")?;
        let token =
            Zeroizing::new(std::fs::read_to_string(file).map_err(|err| {
                format!("cannot read the API token file {}: {err}", file.display())
            })?);
        return Ok(Zeroizing::new(token.trim().to_string()));
    }
    let name = env.unwrap_or(default_env);
    match std::env::var(name) {
        Ok(token) if !token.trim().is_empty() => Ok(Zeroizing::new(token.trim().to_string())),
        _ => Err(format!(
            "the environment variable {name} holding the API token is not set (or set `api_token_file:`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "secret").unwrap();
        for (mode, fine) in [(0o600, true), (0o400, true), (0o640, false), (0o602, false)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let result = check(&file, "the API token file");
            assert_eq!(result.is_ok(), fine, "{mode:o}: {result:?}");
            if let Err(err) = result {
                assert!(
                    err.contains(&format!("chmod 600 {}", file.display())),
                    "{err}"
                );
            }
        }
        let missing = check(&dir.path().join("none"), "the API token file").unwrap_err();
        assert!(
            missing.starts_with("cannot read the API token file"),
            "{missing}"
        );
        assert!(check(dir.path(), "the API token file").is_err());
    }
}
