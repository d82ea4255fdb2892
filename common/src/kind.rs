//! The kinds of failure, which decide what rotor does next and who is told.

/// What kind of failure an error is: status, exit codes, metrics and notifications use it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Worth retrying as it is: a timeout, a server or API that did not answer, a throttle.
    /// The next pass tries again.
    Transient,
    /// Nothing changes until the operator acts: credentials, permissions, a foreign record in
    /// the way, a setting the remote side refuses, a file rotor will not touch.
    NeedsOperator,
    /// Someone else changed what rotor read (records, the store) in between: nothing was
    /// applied, and the next pass reads again.
    Conflict,
}

impl ErrorKind {
    /// The word used in status, metrics labels and notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::NeedsOperator => "needs-operator",
            Self::Conflict => "conflict",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
