//! `type: maildir`: reports delivered to a Maildir. Messages in `new/`, and those in `cur/`
//! not yet flagged seen, are read; each processed one is moved to `cur/` with the `S` (seen)
//! flag, as a mail client would.

use std::path::PathBuf;

use serde::Deserialize;

use crate::files::{read_bounded, regular_files};
use crate::{Fetched, ReportError, Skipped, Source, async_trait};

/// The `type: maildir` source's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaildirSettings {
    /// The Maildir (holding `new/`, `cur/` and `tmp/`).
    pub path: PathBuf,
    /// The `rua=` address whose mail arrives here (for `rotor check`; an IMAP login that is an
    /// address is taken as it).
    pub address: Option<String>,
}

/// A Maildir.
pub struct Maildir {
    settings: MaildirSettings,
}

/// Whether a message file name in `cur/` carries the seen flag (`…:2,FS`).
fn seen(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

impl Maildir {
    /// The source for `settings`.
    pub fn new(settings: MaildirSettings) -> Self {
        Self { settings }
    }
}

#[async_trait]
impl Source for Maildir {
    fn describe(&self) -> String {
        format!("maildir {}", self.settings.path.display())
    }

    async fn fetch(&self, max_size: usize) -> Result<Vec<Result<Fetched, Skipped>>, ReportError> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.settings.path.join(sub);
            let names = regular_files(&dir).map_err(|err| {
                ReportError::Refused(format!("cannot read the maildir {}: {err}", dir.display()))
            })?;
            for name in names.into_iter().filter(|name| !seen(name)) {
                let id = format!("{sub}/{name}");
                found.push(match read_bounded(&dir.join(&name), max_size) {
                    Ok(bytes) => Ok(Fetched { id, bytes }),
                    Err(reason) => Err(Skipped { id, reason }),
                });
            }
        }
        Ok(found)
    }

    async fn done(&self, ids: &[String]) -> Result<(), ReportError> {
        let cur = self.settings.path.join("cur");
        for id in ids {
            let Some((sub, name)) = id.split_once('/') else {
                continue;
            };
            if !matches!(sub, "new" | "cur") || name.contains('/') {
                continue;
            }
            let base = name.split_once(":2,").map_or(name, |(base, _)| base);
            let flags = name.split_once(":2,").map_or("", |(_, flags)| flags);
            let mut flags: Vec<char> = flags.chars().chain(['S']).collect();
            flags.sort_unstable();
            flags.dedup();
            let target = format!("{base}:2,{}", flags.into_iter().collect::<String>());
            let from = self.settings.path.join(sub).join(name);
            std::fs::rename(&from, cur.join(&target)).map_err(|err| {
                ReportError::Refused(format!("cannot flag {} as seen: {err}", from.display()))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seen_flag_is_read_from_the_name() {
        assert!(seen("1700000000.M1.host:2,S"));
        assert!(seen("1700000000.M1.host:2,FS"));
        assert!(!seen("1700000000.M1.host:2,F"));
        assert!(!seen("1700000000.M1.host"));
    }
}
