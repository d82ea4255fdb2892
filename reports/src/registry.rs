//! The report sources rotor knows, by the `type:` of their config entry: the one place that
//! names every source.

use serde::Deserialize;

use crate::{ReportError, Source, dir, imap, maildir};

/// A report source's settings, tagged by `type:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSettings {
    /// An IMAP mailbox.
    Imap(imap::ImapSettings),
    /// A Maildir (its `new/` and `cur/`).
    Maildir(maildir::MaildirSettings),
    /// A directory of report files (`.xml`, `.xml.gz`, `.zip`, `.eml`).
    Dir(dir::DirSettings),
}

impl SourceSettings {
    /// The address whose reports arrive at this source, if known.
    pub fn address(&self) -> Option<String> {
        match self {
            Self::Imap(s) => s
                .address
                .clone()
                .or_else(|| s.user.contains('@').then(|| s.user.clone())),
            Self::Maildir(s) => s.address.clone(),
            Self::Dir(s) => s.address.clone(),
        }
        .map(|address| address.trim().to_ascii_lowercase())
    }

    /// The source for these settings (secrets are read here, not when the config is loaded).
    pub fn build(&self) -> Result<Box<dyn Source>, ReportError> {
        match self {
            Self::Imap(settings) => imap::build(settings),
            Self::Maildir(settings) => Ok(Box::new(maildir::Maildir::new(settings.clone()))),
            Self::Dir(settings) => Ok(Box::new(dir::Dir::new(settings.clone()))),
        }
    }
}
