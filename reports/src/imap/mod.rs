//! `type: imap`: reports read from an IMAP mailbox (the `rua=` address's), over TLS; processed
//! messages are moved to `processed:` or flagged `\Seen`.

mod settings;

pub use settings::ImapSettings;

use crate::{ReportError, Source};

/// The IMAP source for `settings`.
pub fn build(settings: &ImapSettings) -> Result<Box<dyn Source>, ReportError> {
    Err(ReportError::Setting(format!(
        "reports: imap {}: the IMAP source is not available in this build",
        settings.host
    )))
}
