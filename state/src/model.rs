//! The records the store holds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use rotor_common::{ErrorKind, KeyAlgorithm};
use serde::{Deserialize, Serialize};

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A selector is reserved; the key pair is (being) generated.
    Generated,
    /// The TXT record was added at the provider.
    Published,
    /// Every checked nameserver and resolver returns the exact record.
    Propagated,
    /// The signers sign with this key.
    Active,
    /// A newer key took over; this one stays published through the grace window.
    Retiring,
    /// The record is published with an empty `p=`; the private key is destroyed.
    Revoked,
    /// The record is gone and the private key destroyed.
    Retired,
    /// The key never became active (propagation timed out); it was cleaned up.
    Failed,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 8] = [
        Phase::Generated,
        Phase::Published,
        Phase::Propagated,
        Phase::Active,
        Phase::Retiring,
        Phase::Revoked,
        Phase::Retired,
        Phase::Failed,
    ];

    /// The phase's name as shown to users and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Generated => "generated",
            Phase::Published => "published",
            Phase::Propagated => "propagated",
            Phase::Active => "active",
            Phase::Retiring => "retiring",
            Phase::Revoked => "revoked",
            Phase::Retired => "retired",
            Phase::Failed => "failed",
        }
    }

    /// Whether the key's life is over (nothing left in DNS, on disk or in a signer).
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Retired | Phase::Failed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step that changes the world (disk, DNS, a signer). Recorded as the key's intent before it
/// starts, so a run that dies midway is resumed by the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Write the private key file.
    GenerateKey,
    /// Add the TXT record at the provider.
    Publish,
    /// Ask every nameserver and resolver for the record.
    CheckPropagation,
    /// Point the signers at the key and reload them.
    Activate,
    /// Take the key out of the signers, remove its record and destroy the private key.
    Retire,
    /// Take the key out of the signers, replace its record by an empty `p=` and destroy the
    /// private key.
    Revoke,
    /// Remove the revoked record.
    RemoveRevoked,
    /// Clean up a key that never became active: remove its record and private key.
    Abandon,
    /// Switch the signers back to the replaced key (still published) because DMARC reports
    /// show the new one failing; the new key goes to its grace window.
    Rollback,
}

impl Action {
    /// The action's identifier (as stored), e.g. `generate_key`.
    pub fn id(self) -> &'static str {
        match self {
            Action::GenerateKey => "generate_key",
            Action::Publish => "publish",
            Action::CheckPropagation => "check_propagation",
            Action::Activate => "activate",
            Action::Retire => "retire",
            Action::Revoke => "revoke",
            Action::RemoveRevoked => "remove_revoked",
            Action::Abandon => "abandon",
            Action::Rollback => "rollback",
        }
    }

    /// The action's name as shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::GenerateKey => "generate key",
            Action::Publish => "publish record",
            Action::CheckPropagation => "check propagation",
            Action::Activate => "activate in signers",
            Action::Retire => "retire (remove record, destroy key)",
            Action::Revoke => "revoke (publish empty p=, destroy key)",
            Action::RemoveRevoked => "remove revoked record",
            Action::Abandon => "abandon (remove record and key)",
            Action::Rollback => "roll back to the previous key",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server's answer in a propagation check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCheck {
    /// `ip:port`.
    pub server: String,
    /// `authoritative` or `resolver`.
    pub role: String,
    /// Whether it returned exactly the expected record.
    pub ok: bool,
    /// What it returned, in a few words.
    pub detail: String,
}

/// A key reported leaked (`rotor revoke`): it is replaced at once and revoked without a grace
/// window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compromise {
    /// Why, as the operator said.
    pub reason: String,
    /// When it was reported (Unix seconds).
    pub at: u64,
    /// Whether the replacement may skip `min_wait` (`--now`).
    pub skip_min_wait: bool,
}

/// A signer's last probe: a message it signed, verified against the key's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// When it ran (Unix seconds).
    pub at: u64,
    /// Whether the signature was valid, with this key's selector.
    pub ok: bool,
    /// What the verifier said (`signed with s=…`), or why the signer could not be asked.
    pub detail: String,
}

/// What DMARC aggregate reports said of one selector on one day (UTC): messages whose DKIM
/// signature with it passed, failed, or had another result, and who reported them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimDay {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    /// The day's start (Unix seconds, a multiple of 86400).
    pub day: u64,
    /// Messages that passed.
    pub pass: u64,
    /// Messages that failed.
    pub fail: u64,
    /// Messages with another result.
    pub other: u64,
    /// The reporting organisations.
    pub orgs: std::collections::BTreeSet<String>,
}

/// An aggregate report that was counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenReport {
    /// The reporting organisation.
    pub org: String,
    /// Its report id.
    pub report_id: String,
    /// When rotor counted it (Unix seconds).
    pub at: u64,
    /// Where it was read.
    pub source: String,
}

/// The last propagation check of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// When it ran (Unix seconds).
    pub at: u64,
    /// Every server's answer.
    pub servers: Vec<ServerCheck>,
}

impl Check {
    /// Whether every server returned the record (and at least one was asked).
    pub fn passed(&self) -> bool {
        !self.servers.is_empty() && self.servers.iter().all(|server| server.ok)
    }
}

/// One managed key. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The mail domain it signs for.
    pub domain: String,
    /// Its selector, unique for the domain and never reused.
    pub selector: String,
    /// Its algorithm (stored as `rsa-2048`, `ed25519`, …).
    pub algorithm: KeyAlgorithm,
    /// Where it is in its life.
    pub phase: Phase,
    /// When it entered `phase`.
    pub since: u64,
    /// When rotor reserved it.
    pub created_at: u64,
    /// The private key file in rotor's key directory.
    pub key_file: PathBuf,
    /// The TXT record value, once the key exists.
    pub record: Option<String>,
    /// The zone that holds the record, once known.
    pub zone: Option<String>,
    /// The provider's identifier of that zone, where it has one.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// Where the record is written when the selector's name is an alias (a CNAME, or under a
    /// DNAME): the end of that chain. `None`: at the selector's own name.
    #[serde(default)]
    pub target: Option<String>,
    /// When the record was added.
    pub published_at: Option<u64>,
    /// When the signers switched to it.
    pub activated_at: Option<u64>,
    /// The action under way: set before its side effects start, cleared when it is committed.
    pub intent: Option<Action>,
    /// The last propagation check.
    pub last_check: Option<Check>,
    /// The last error, cleared by the next success.
    pub error: Option<String>,
    /// What kind of failure the last error was (read only while `error` is set).
    #[serde(default)]
    pub error_kind: Option<ErrorKind>,
    /// Each signer's state after the last switch that concerned this key (`signing`,
    /// `removed`, or why it failed).
    #[serde(default)]
    pub signers: BTreeMap<String, String>,
    /// Set when the key was reported leaked.
    #[serde(default)]
    pub compromised: Option<Compromise>,
    /// Each signer's last probe with this key (by signer name).
    #[serde(default)]
    pub probes: BTreeMap<String, ProbeResult>,
    /// When the signers were switched back from this key because DMARC reports showed it
    /// failing (no new rotation of its type starts for `monitor.window` after).
    #[serde(default)]
    pub rolled_back_at: Option<u64>,
}

impl KeyRecord {
    /// A new key whose selector is reserved at `now` (Unix seconds); nothing exists yet.
    pub fn reserved(
        domain: &str,
        selector: &str,
        algorithm: KeyAlgorithm,
        key_file: PathBuf,
        now: u64,
    ) -> Self {
        Self {
            domain: domain.to_string(),
            selector: selector.to_string(),
            algorithm,
            phase: Phase::Generated,
            since: now,
            created_at: now,
            key_file,
            record: None,
            zone: None,
            zone_id: None,
            target: None,
            published_at: None,
            activated_at: None,
            intent: None,
            last_check: None,
            error: None,
            error_kind: None,
            signers: BTreeMap::new(),
            compromised: None,
            probes: BTreeMap::new(),
            rolled_back_at: None,
        }
    }

    /// `<selector>._domainkey.<domain>`: the name verifiers ask for.
    pub fn selector_name(&self) -> String {
        selector_name(&self.selector, &self.domain)
    }

    /// Where the record lives: the selector's name, or the end of its alias chain.
    pub fn record_name(&self) -> String {
        self.target.clone().unwrap_or_else(|| self.selector_name())
    }
}

/// `<selector>._domainkey.<domain>`: where verifiers look for a selector's key.
pub fn selector_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// One entry of a domain's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When (Unix seconds).
    pub at: u64,
    /// The domain.
    pub domain: String,
    /// The key's selector.
    pub selector: String,
    /// The phase the key is in after the event.
    pub phase: Phase,
    /// What happened, and the evidence.
    pub detail: String,
}

/// The outcome of the last pass, kept so that `status` can tell when passes stop and a clock
/// that went back. Times are Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    /// When the pass ended.
    pub at: u64,
    /// Whether every domain succeeded.
    pub success: bool,
    /// When the last successful pass ended (this one's `at` if it succeeded).
    pub last_success: Option<u64>,
    /// The machine's boot clock when the pass ended, where it could be read: the next pass
    /// compares how far the wall clock moved with how far this clock counted, to tell a jump
    /// from a long wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootClock>,
}

impl PassRecord {
    /// The record of a pass that ended at `at` (on the boot clock: `boot`), after `before`:
    /// its last success carries over unless this one succeeded.
    pub(crate) fn after(
        before: Option<PassRecord>,
        at: u64,
        boot: Option<BootClock>,
        success: bool,
    ) -> Self {
        Self {
            at,
            success,
            last_success: if success {
                Some(at)
            } else {
                before.and_then(|pass| pass.last_success)
            },
            boot,
        }
    }
}

/// A reading of the machine's boot clock (Linux's `CLOCK_BOOTTIME`: it counts from boot, suspend
/// included, and no one sets it), with the boot it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootClock {
    /// The boot's random id (`/proc/sys/kernel/random/boot_id`), as a number.
    pub id: u128,
    /// Seconds since that boot.
    pub secs: u64,
}

impl BootClock {
    /// Seconds this clock counted from `earlier` to `self`, when both are of the same boot.
    pub fn since(self, earlier: Self) -> Option<u64> {
        if self.id != earlier.id {
            return None;
        }
        self.secs.checked_sub(earlier.secs)
    }
}
