//! What kind of failure a step's error is ([`ErrorKind`]): read off the typed errors in its
//! chain (the providers', the signers', the store's, the engine's own), so that status, exit codes, metrics
//! and notifications say whether the next pass retries it or the operator must act.

use rotor_common::ErrorKind;
use rotor_providers::ProviderError;
use rotor_signers::SignerError;
use rotor_state::StoreError;
use serde::Serialize;

/// A domain whose step failed in a pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The domain.
    pub domain: String,
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// The error, with its causes.
    pub error: String,
}

impl Failure {
    /// The failure of `domain` with `err`.
    pub fn new(domain: String, err: &anyhow::Error) -> Self {
        Self {
            domain,
            kind: kind_of(err),
            error: format!("{err:#}"),
        }
    }
}

/// An error of the engine's own, of a known kind (or one copied, kind and text, for several
/// domains that failed together).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Kinded {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

/// A failure the next pass retries as it is (a provider that said done and did not, a record
/// that went away meanwhile).
pub fn transient(message: String) -> anyhow::Error {
    Kinded {
        kind: ErrorKind::Transient,
        message,
    }
    .into()
}

/// The same failure again, for another domain of a batch that failed as one.
pub fn copy(err: &anyhow::Error) -> anyhow::Error {
    Kinded {
        kind: kind_of(err),
        message: format!("{err:#}"),
    }
    .into()
}

/// The kind of `err`: the first typed error in its chain that tells; an error that does not
/// say needs the operator (rotor does not guess that waiting helps).
pub fn kind_of(err: &anyhow::Error) -> ErrorKind {
    err.chain()
        .find_map(|cause| {
            if let Some(kinded) = cause.downcast_ref::<Kinded>() {
                return Some(kinded.kind);
            }
            if let Some(provider) = cause.downcast_ref::<ProviderError>() {
                return Some(provider.kind());
            }
            if let Some(signer) = cause.downcast_ref::<SignerError>() {
                return Some(signer.kind());
            }
            if let Some(store) = cause.downcast_ref::<StoreError>() {
                return match store {
                    // Another rotor took the step, or the domain: it carries on.
                    StoreError::Conflict { .. } | StoreError::Fenced { .. } => {
                        Some(ErrorKind::Conflict)
                    }
                    StoreError::Busy { .. } | StoreError::Unavailable { .. } => {
                        Some(ErrorKind::Transient)
                    }
                    _ => Some(ErrorKind::NeedsOperator),
                };
            }
            let io = cause.downcast_ref::<std::io::Error>()?;
            match io.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted => {
                    Some(ErrorKind::Transient)
                }
                _ => Some(ErrorKind::NeedsOperator),
            }
        })
        .unwrap_or(ErrorKind::NeedsOperator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_kind_comes_from_the_typed_error_in_the_chain() {
        let unreachable: anyhow::Error = ProviderError::Unreachable {
            provider: "dns".into(),
            server: "127.0.0.1:53".into(),
            detail: "timed out".into(),
        }
        .into();
        let unreachable = unreachable.context("example.com s1: publish");
        assert_eq!(kind_of(&unreachable), ErrorKind::Transient);
        let refused: anyhow::Error = ProviderError::Auth {
            provider: "dns".into(),
            detail: "bad token".into(),
        }
        .into();
        assert_eq!(kind_of(&refused), ErrorKind::NeedsOperator);
        let raced: anyhow::Error = ProviderError::Conflict {
            provider: "dns".into(),
            zone: "example.com".into(),
            detail: "changed".into(),
        }
        .into();
        assert_eq!(kind_of(&copy(&raced)), ErrorKind::Conflict);
        assert_eq!(
            kind_of(&transient("said done, did not".into()).context("retire")),
            ErrorKind::Transient
        );
        let denied = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            .context("writing /etc/opendkim/KeyTable")
            .unwrap_err();
        assert_eq!(kind_of(&denied), ErrorKind::NeedsOperator);
        assert_eq!(
            kind_of(&anyhow::anyhow!("a foreign DKIM record")),
            ErrorKind::NeedsOperator
        );
    }
}
