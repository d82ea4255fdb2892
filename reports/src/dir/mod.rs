//! `type: dir`: report files dropped in a directory (`.xml`, `.xml.gz`, `.zip`, or a message
//! `.eml`); each processed file is moved to `processed/` beside them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::files::{read_bounded, regular_files};
use crate::{Fetched, ReportError, Skipped, Source, async_trait};

/// The `type: dir` source's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSettings {
    /// The directory; processed files go to its `processed/` subdirectory.
    pub path: PathBuf,
    /// The `rua=` address whose mail arrives here (for `rotor check`; an IMAP login that is an
    /// address is taken as it).
    pub address: Option<String>,
}

/// A directory of report files.
pub struct Dir {
    settings: DirSettings,
}

impl Dir {
    /// The source for `settings`.
    pub fn new(settings: DirSettings) -> Self {
        Self { settings }
    }

    fn processed(&self) -> PathBuf {
        self.settings.path.join("processed")
    }
}

#[async_trait]
impl Source for Dir {
    fn describe(&self) -> String {
        format!("directory {}", self.settings.path.display())
    }

    async fn fetch(&self, max_size: usize) -> Result<Vec<Result<Fetched, Skipped>>, ReportError> {
        let dir = &self.settings.path;
        let names = regular_files(dir).map_err(|err| {
            ReportError::Refused(format!(
                "cannot read the report directory {}: {err}",
                dir.display()
            ))
        })?;
        Ok(names
            .into_iter()
            .map(|name| match read_bounded(&dir.join(&name), max_size) {
                Ok(bytes) => Ok(Fetched { id: name, bytes }),
                Err(reason) => Err(Skipped { id: name, reason }),
            })
            .collect())
    }

    async fn done(&self, ids: &[String]) -> Result<(), ReportError> {
        let processed = self.processed();
        std::fs::create_dir_all(&processed).map_err(|err| {
            ReportError::Refused(format!("cannot create {}: {err}", processed.display()))
        })?;
        for id in ids {
            // Only names fetched from this directory: no separators, so nothing else moves.
            if id.contains('/') {
                continue;
            }
            std::fs::rename(self.settings.path.join(id), processed.join(id)).map_err(|err| {
                ReportError::Refused(format!(
                    "cannot move {id} into {}: {err}",
                    processed.display()
                ))
            })?;
        }
        Ok(())
    }
}
