//! What can go wrong in a signer adapter, and what kind of failure it is.
//!
//! Each message is complete on its own (a file, a setting or a command's excerpt, and what to do):
//! no error here exposes a `source()` chain, so `anyhow`'s `{:#}` in the binary shows each part
//! once.

use std::io;
use std::path::Path;

use rotor_common::ErrorKind;

/// Why a signer could not be staged, switched, cleaned or checked.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// Reading, writing or removing a file or directory failed (`what` says which and why).
    #[error("{what}: {error}")]
    Io {
        /// What rotor was doing, with the path.
        what: String,
        /// The system's error.
        error: io::Error,
    },
    /// A file, directory or process rotor will not use as it is: others may write it, it is a
    /// link, it belongs to a stranger. The message says how to fix it.
    #[error("{0}")]
    Unsafe(String),
    /// A setting that cannot work: a missing user, a template that does not render, a file
    /// rotor cannot parse, a plan the signer cannot express.
    #[error("{0}")]
    Setting(String),
    /// A private key rotor cannot turn into the form the signer reads.
    #[error("private key {path}: {error}")]
    Key {
        /// Rotor's key file.
        path: String,
        /// Why.
        error: rotor_keys::KeyError,
    },
    /// A command (named by its setting, never by its command line) that did not succeed.
    #[error("{setting}: {outcome}")]
    Command {
        /// The setting that holds the command (`reload`, `verify`, `configtest`).
        setting: String,
        /// How it ended, with the scrubbed last line of its output.
        outcome: String,
        /// Whether retrying may help: it was killed by a signal, not refused.
        transient: bool,
    },
    /// A command that did not finish in time; it was killed with its process group.
    #[error("{setting}: timed out after {after}")]
    TimedOut {
        /// The setting that holds the command.
        setting: String,
        /// The timeout, as `timeout:` is written.
        after: String,
    },
    /// The signer process does not answer: no pid file, or the process in it is not running.
    #[error("{0}")]
    NotRunning(String),
    /// The switch failed; the signer's previous files are back (and it was reloaded again).
    #[error("the signer was not switched; its previous files are restored: {0}")]
    Restored(Box<SignerError>),
    /// The switch failed, and so did putting the previous state back.
    #[error("{failed}; {step} failed too: {error}")]
    NotRestored {
        /// Why the switch failed.
        failed: Box<SignerError>,
        /// What failed afterwards (`restoring the previous files`, `reloading the restored
        /// files`).
        step: &'static str,
        /// Why that failed.
        error: Box<SignerError>,
    },
    /// The signer could not be asked to sign a probe message, or refused it.
    #[error("{message}")]
    Probe {
        /// What happened, naming the socket or URL (never a command line).
        message: String,
        /// Whether retrying may help (no answer, a temporary failure).
        transient: bool,
    },
    /// An error of one adapter, named (`OpenDKIM: …`).
    #[error("{signer}: {error}")]
    In {
        /// The signer's name.
        signer: &'static str,
        /// Its error.
        error: Box<SignerError>,
    },
}

impl SignerError {
    /// What kind of failure this is: a command that timed out or a signer process that does not
    /// answer is [`ErrorKind::Transient`]; permissions, a foreign or linked file, a bad setting,
    /// a command that refused, or a state rotor could not put back is
    /// [`ErrorKind::NeedsOperator`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { error, .. } => match error.kind() {
                io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::ResourceBusy => ErrorKind::Transient,
                _ => ErrorKind::NeedsOperator,
            },
            Self::TimedOut { .. } | Self::NotRunning(_) => ErrorKind::Transient,
            Self::Command { transient, .. } | Self::Probe { transient, .. } if *transient => {
                ErrorKind::Transient
            }
            Self::Restored(error) | Self::In { error, .. } => error.kind(),
            Self::Unsafe(_)
            | Self::Setting(_)
            | Self::Key { .. }
            | Self::Command { .. }
            | Self::Probe { .. }
            | Self::NotRestored { .. } => ErrorKind::NeedsOperator,
        }
    }

    /// An [`SignerError::Io`] error: `what` was being done.
    pub fn io(what: impl Into<String>, error: impl Into<io::Error>) -> Self {
        Self::Io {
            what: what.into(),
            error: error.into(),
        }
    }

    /// An [`SignerError::Io`] error about `path`: "cannot `verb` PATH".
    pub fn at(verb: &str, path: &Path, error: impl Into<io::Error>) -> Self {
        Self::io(format!("cannot {verb} {}", path.display()), error)
    }

    /// This error, named as `signer`'s.
    pub fn within(self, signer: &'static str) -> Self {
        Self::In {
            signer,
            error: Box::new(self),
        }
    }
}

/// What signer adapters return.
pub type Result<T, E = SignerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_absent_daemons_are_transient_the_rest_needs_the_operator() {
        let timed_out = SignerError::TimedOut {
            setting: "reload".into(),
            after: "1s".into(),
        };
        assert_eq!(timed_out.kind(), ErrorKind::Transient);
        let restored = SignerError::Restored(Box::new(timed_out)).within("OpenDKIM");
        assert_eq!(restored.kind(), ErrorKind::Transient);
        assert_eq!(
            restored.to_string(),
            "OpenDKIM: the signer was not switched; its previous files are restored: reload: timed out after 1s"
        );
        assert_eq!(
            SignerError::NotRunning("pid file /run/x.pid: process 7 is not running".into()).kind(),
            ErrorKind::Transient
        );
        let denied = SignerError::at(
            "write",
            Path::new("/etc/x"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(denied.kind(), ErrorKind::NeedsOperator);
        assert!(denied.to_string().starts_with("cannot write /etc/x: "));
        for refused in [
            SignerError::Unsafe("/k is a symbolic link".into()),
            SignerError::Setting("no user \"x\"".into()),
            SignerError::Command {
                setting: "verify".into(),
                outcome: "exited with status 1".into(),
                transient: false,
            },
        ] {
            assert_eq!(refused.kind(), ErrorKind::NeedsOperator, "{refused}");
        }
    }
}
