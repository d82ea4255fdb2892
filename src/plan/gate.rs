//! What a key (or a domain's next rotation) waits for: a named gate, not a sentence, so that
//! `rotor plan`, `rotor status` and the engine read the same thing.

use std::fmt;

use rotor_common::KeyAlgorithm;
use rotor_state::{Action, Phase};
use serde::Serialize;

/// A gate that holds a step back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "gate", rename_all = "kebab-case")]
pub enum Gate {
    /// `propagation.min_wait` has not passed since the record was published.
    MinWait,
    /// The last visibility check did not find the record on these servers; the next check is
    /// due after `poll_every`.
    Propagation {
        /// The servers that did not return the record.
        missing: Vec<String>,
    },
    /// The activation window is closed.
    Window {
        /// The window, as configured.
        window: String,
        /// Its time zone.
        timezone: String,
    },
    /// Another new key of the domain is on its way: the signers switch to both at once.
    SwitchTogether {
        /// The other key's selector.
        selector: String,
        /// Its algorithm.
        algorithm: KeyAlgorithm,
        /// Its phase.
        phase: Phase,
    },
    /// The active key is not due for rotation yet.
    NextRotation,
    /// A new key of this type is already on its way.
    RotationUnderWay {
        /// The new key's selector.
        selector: String,
        /// Its phase.
        phase: Phase,
    },
    /// A rotation of this type failed; the next is tried after `propagation.timeout`.
    RetryAfterFailure {
        /// The failed key's selector.
        selector: String,
    },
    /// The grace window: mail signed with the replaced key may still be in flight.
    Grace,
    /// The revoked record (empty `p=`) stays published for `revoke_for`.
    RevokeFor,
    /// DMARC reports still show mail signed with the replaced key: it is retired once they
    /// have shown none for `monitor.retire_when_silent` (or at `monitor.max_wait`).
    StillSeen {
        /// The end of the last day (Unix seconds) reports saw its selector.
        last_seen: u64,
    },
    /// The signers were switched back from a new key DMARC reports showed failing: no new
    /// rotation starts for `monitor.window` (or until `rotor rotate`).
    RolledBack {
        /// The rolled-back key's selector.
        selector: String,
    },
    /// No DMARC report since the switch shows the replaced key silent yet: it is retired once
    /// reports show the domain's mail without it for `monitor.retire_when_silent` (or at
    /// `monitor.max_wait`).
    AwaitingReports,
    /// The clock cannot be trusted to end a window in this pass (it went back, or jumped).
    ClockInDoubt {
        /// The step held.
        held: Action,
        /// What is wrong with the clock.
        reason: String,
    },
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MinWait => f.write_str("min_wait after publishing"),
            Self::Propagation { missing } => {
                write!(f, "propagation: not yet at {}", missing.join(", "))
            }
            Self::Window { window, timezone } => {
                write!(f, "waiting for window {window} ({timezone})")
            }
            Self::SwitchTogether {
                selector,
                algorithm,
                phase,
            } => write!(
                f,
                "switching together with {selector} ({algorithm}), which is {phase}"
            ),
            Self::NextRotation => f.write_str("next rotation"),
            Self::RotationUnderWay { selector, phase } => {
                write!(f, "rotation under way ({selector} is {phase})")
            }
            Self::RetryAfterFailure { selector } => {
                write!(f, "retry after failed rotation ({selector})")
            }
            Self::Grace => f.write_str("grace window (mail signed with it may still be in flight)"),
            Self::RevokeFor => f.write_str("revoke_for (empty p= stays published)"),
            Self::StillSeen { last_seen } => write!(
                f,
                "DMARC reports still show mail signed with it (until {}): retired once they show none for monitor.retire_when_silent",
                crate::time::rfc3339(*last_seen)
            ),
            Self::RolledBack { selector } => write!(
                f,
                "{selector} was rolled back (failing in DMARC reports): no new rotation before monitor.window has passed, or `rotor rotate`"
            ),
            Self::AwaitingReports => f.write_str(
                "DMARC reports: none yet shows the domain's mail without it for monitor.retire_when_silent",
            ),
            Self::ClockInDoubt { held, reason } => write!(f, "{held} held for this pass: {reason}"),
        }
    }
}
