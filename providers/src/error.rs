//! Errors every provider adapter reports.

use std::time::Duration;

use rotor_common::ErrorKind;

/// What went wrong talking to a DNS provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider rejected our credentials.
    #[error("{provider}: authentication failed: {detail}")]
    Auth {
        /// The provider's name in the config.
        provider: String,
        /// What the provider said, or what to check.
        detail: String,
    },
    /// No zone the provider serves contains the name.
    #[error("{provider}: no zone found for {name}: {detail}")]
    ZoneNotFound {
        /// The provider's name in the config.
        provider: String,
        /// The name whose zone was looked for.
        name: String,
        /// What the provider answered.
        detail: String,
    },
    /// The provider refused the operation (policy, permissions).
    #[error("{provider}: {operation} refused for zone {zone}: {detail}")]
    Refused {
        /// The provider's name in the config.
        provider: String,
        /// What rotor tried to do.
        operation: String,
        /// The zone concerned.
        zone: String,
        /// What the provider said.
        detail: String,
    },
    /// The provider could not be reached, or did not answer in time.
    #[error("{provider}: {server} did not answer ({detail})")]
    Unreachable {
        /// The provider's name in the config.
        provider: String,
        /// The address or endpoint tried.
        server: String,
        /// The network error.
        detail: String,
    },
    /// The records changed since rotor read them (someone else wrote in between): nothing was
    /// applied, and the next pass reads them again.
    #[error(
        "{provider}: update of zone {zone} not applied: the TXT records changed since rotor read them ({detail})"
    )]
    Conflict {
        /// The provider's name in the config.
        provider: String,
        /// The zone concerned.
        zone: String,
        /// What the provider said.
        detail: String,
    },
    /// The provider answered with an error that may pass (server failure, rate limit).
    #[error("{provider}: temporary failure: {detail}")]
    Temporary {
        /// The provider's name in the config.
        provider: String,
        /// What the provider said.
        detail: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The provider's settings cannot be used as they are (a secret missing, a feature not
    /// compiled in); found when the adapter is built.
    #[error("providers.{provider}: {detail}")]
    Settings {
        /// The provider's name in the config.
        provider: String,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The provider's answer made no sense, or the request was malformed.
    #[error("{provider}: {detail}")]
    Protocol {
        /// The provider's name in the config.
        provider: String,
        /// What was wrong.
        detail: String,
    },
}

impl ProviderError {
    /// Whether the same call may succeed later without any change on the user's side.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// What kind of failure it is: a provider that did not answer or asked to slow down is
    /// transient; records changed by someone else in between are a conflict; anything else
    /// (credentials, permissions, a zone or record rotor does not own, an answer it cannot use)
    /// waits for the operator.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unreachable { .. } | Self::Temporary { .. } => ErrorKind::Transient,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Auth { .. }
            | Self::ZoneNotFound { .. }
            | Self::Refused { .. }
            | Self::Settings { .. }
            | Self::Protocol { .. } => ErrorKind::NeedsOperator,
        }
    }
}
