//! `domains_file:`, the domain list of an ESP: one domain per line, as a JSON object with the
//! fields of a `domains:` entry (`{"name": "example.com", "provider": "bind", "signers":
//! ["mx1"]}`), blank lines and lines starting with `#` skipped. Written by a program (a
//! database export) rather than by hand, and read in a fraction of the time YAML takes: a list
//! of 100,000 domains parses in tens of milliseconds.

use std::path::{Path, PathBuf};

use super::values::Declared;
use super::{ConfigError, RawDomain};

/// Where a domain entry was read: which error location and field name it gets.
pub(super) enum Origin<'a> {
    /// `domains[index]` of the config.
    Config(usize),
    /// A line (from 1) of the domains file at this path.
    File(&'a Path, usize),
}

impl Origin<'_> {
    /// The field as the error names it: `domains[3].grace`, or `grace` at a file's line.
    pub(super) fn field(&self, field: &str) -> String {
        match self {
            Self::Config(index) => format!("domains[{index}].{field}"),
            Self::File(..) => field.to_string(),
        }
    }
}

/// The path of `file` (as written in the config at `config`): relative to the config's folder.
pub(super) fn resolve(config: &Path, file: &Path) -> PathBuf {
    match config.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_owned(),
    }
}

/// The domains of the file at `path` (its text: `text`), each with the line it is on, read
/// one at a time as they are taken (a list of every entry first was most of the config's
/// memory at 100,000 domains); a line that is no domain entry, or names a provider or signer
/// not `declared`, is an error at that line.
pub(super) fn parse<'a>(
    path: &'a Path,
    text: &'a str,
    declared: &'a Declared,
) -> impl Iterator<Item = Result<(Origin<'a>, RawDomain), ConfigError>> + 'a {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(move |(number, line)| {
            let domain = entry(path, number, line)?;
            let signers = domain.signers.iter().map(|signer| signer.0.as_str());
            if let Some(message) = declared.undeclared(&domain.provider.0, signers) {
                return Err(ConfigError::new(path, Some((number, 1)), message));
            }
            Ok((Origin::File(path, number), domain))
        })
}

/// The domain entry on line `number` of the file at `path`.
fn entry(path: &Path, number: usize, line: &str) -> Result<RawDomain, ConfigError> {
    if let Ok(domain) = serde_json::from_str(line) {
        return Ok(domain);
    }
    // Read again, slower, for the path of the field at fault.
    let mut json = serde_json::Deserializer::from_str(line);
    let at = |err: serde_json::Error, field: String| {
        let mut message = err.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        if field != "." {
            message = format!("{field}: {message}");
        }
        ConfigError::new(path, Some((number, err.column())), message)
    };
    let domain = serde_path_to_error::deserialize(&mut json).map_err(|err| {
        let field = err.path().to_string();
        at(err.into_inner(), field)
    })?;
    json.end().map_err(|err| at(err, ".".into()))?;
    Ok(domain)
}
