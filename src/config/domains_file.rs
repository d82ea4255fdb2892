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

/// Reads the domains of the file at `path` (its text: `text`), each with the line it is on; a
/// line that is no domain entry, or names a provider or signer not `declared`, is an error at
/// that line.
pub(super) fn parse<'a>(
    path: &'a Path,
    text: &str,
    declared: &Declared,
) -> Result<Vec<(Origin<'a>, RawDomain)>, ConfigError> {
    let mut domains = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let domain: RawDomain = match serde_json::from_str(trimmed) {
            Ok(domain) => domain,
            // Read again, slower, for the path of the field at fault.
            Err(_) => {
                let mut json = serde_json::Deserializer::from_str(trimmed);
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
                domain
            }
        };
        let signers = domain.signers.iter().map(|signer| signer.0.as_str());
        if let Some(message) = declared.undeclared(&domain.provider.0, signers) {
            return Err(ConfigError::new(path, Some((number, 1)), message));
        }
        domains.push((Origin::File(path, number), domain));
    }
    Ok(domains)
}
