//! What can go wrong reading reports.

use rotor_common::ErrorKind;

/// Why a report source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The source did not answer or the connection broke (retried on the next pass).
    #[error("{0}")]
    Unreachable(String),
    /// The source refused rotor (credentials, permissions, a missing mailbox or directory).
    #[error("{0}")]
    Refused(String),
    /// A setting that cannot work.
    #[error("{0}")]
    Setting(String),
}

impl ReportError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unreachable(_) => ErrorKind::Transient,
            Self::Refused(_) | Self::Setting(_) => ErrorKind::NeedsOperator,
        }
    }
}
