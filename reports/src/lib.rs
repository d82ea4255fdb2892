//! DMARC aggregate reports: where rotor reads them ([`Source`]: an IMAP mailbox, a Maildir, a
//! directory of files) and what they say of each DKIM selector ([`parse`]: RFC 7489 and
//! RFC 9990 reports, as XML, gzip, zip, or a message carrying one).
//!
//! One folder per source (`imap/`, `maildir/`, `dir/`), each with its settings; [`registry`]
//! turns a `type:`-tagged entry of the config into a source.

pub mod dir;
mod error;
mod files;
pub mod imap;
pub mod maildir;
pub mod parse;
pub mod registry;

pub use async_trait::async_trait;
pub use error::ReportError;
pub use registry::SourceSettings;

/// The largest report (a message, a file, or what it decompresses to) rotor reads, by default.
pub const MAX_REPORT: usize = 10 << 20;

/// One report as fetched: where it came from and its bytes (a message, or a file's contents).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Identifies it within its source (an IMAP UID with the mailbox's UIDVALIDITY, a file
    /// name), for [`Source::done`] and the messages about it.
    pub id: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A place reports arrive.
#[async_trait]
pub trait Source: Send + Sync {
    /// A name for messages (`imap dmarc@example.com@imap.example.com`, `maildir /var/mail/d`).
    fn describe(&self) -> String;

    /// The reports not yet processed, each at most `max_size` bytes (a larger one is skipped,
    /// and said so, as an `Err` in its place).
    async fn fetch(&self, max_size: usize) -> Result<Vec<Result<Fetched, Skipped>>, ReportError>;

    /// Marks `ids` processed (moved, flagged or renamed), so the next fetch does not see them.
    async fn done(&self, ids: &[String]) -> Result<(), ReportError>;
}

/// A report a source could not hand over (too large, unreadable), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its id in the source.
    pub id: String,
    /// Why it was skipped.
    pub reason: String,
}
