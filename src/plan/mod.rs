//! The pure core: what a pass will do, as data.
//!
//! [`DomainPlan::compute`] takes a domain's policy, its stored keys, the time and what is known of
//! the clock, and returns, without any I/O, per key the step it takes now (or the [`Gate`] that
//! holds it), the exact DNS changes that step makes, the keys the signers end up with, and the
//! steps that follow at once if it succeeds. `rotor plan` prints it, `rotor status` reads its
//! gates, and the engine performs its steps: after each step it commits, the domain's plan is
//! computed again from the store (the chained steps are what that gives when every step
//! succeeds).

mod by_domain;
pub mod dns;
pub mod evidence;
mod gate;
pub mod lifecycle;

pub use by_domain::ByDomain;
pub use dns::DnsChange;
pub use gate::Gate;
pub use lifecycle::Next;

use std::collections::BTreeSet;

use rotor_common::KeyAlgorithm;
use rotor_state::{Action, BootClock, DkimDay, KeyRecord, PassRecord, Phase};
use serde::Serialize;

use crate::config::{DomainConfig, Policy};

/// A step of a key, or of a domain's next rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Taken in this pass.
    Act {
        /// The action.
        action: Action,
    },
    /// Held back.
    Wait {
        /// When the gate opens (Unix seconds), if known.
        until: Option<u64>,
        /// What holds it.
        #[serde(flatten)]
        gate: Gate,
    },
    /// Nothing more: the key's life is over.
    Done,
}

impl From<Next> for Step {
    fn from(next: Next) -> Self {
        match next {
            Next::Act(action) => Self::Act { action },
            Next::Wait { until, gate } => Self::Wait { until, gate },
            Next::Done => Self::Done,
        }
    }
}

impl Step {
    /// The action taken now, if any.
    pub fn action(&self) -> Option<Action> {
        match self {
            Self::Act { action } => Some(*action),
            _ => None,
        }
    }
}

/// Whether a new key of one type is started in this pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationPlan {
    /// The key type.
    pub algorithm: KeyAlgorithm,
    /// `Act(GenerateKey)`: a new key is reserved under a new selector; else what holds it.
    pub step: Step,
    /// The steps that follow at once when each succeeds.
    pub then: Vec<Step>,
}

/// One key's part of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyPlan {
    /// Its selector.
    pub selector: String,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// Where its record lives.
    pub record_name: String,
    /// The zone of its record, once known.
    pub zone: Option<String>,
    /// Its phase now.
    pub phase: Phase,
    /// What it does now, or what holds it.
    pub step: Step,
    /// The exact DNS changes of that step.
    pub dns: Vec<DnsChange>,
    /// The signers the step switches (activation, retirement, revocation).
    pub signers: Vec<String>,
    /// The steps that follow at once when each succeeds.
    pub then: Vec<Step>,
}

/// What one domain does in a pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainPlan {
    /// The domain.
    pub domain: String,
    /// The provider that holds its zone.
    pub provider: String,
    /// Its zone, when configured.
    pub zone: Option<String>,
    /// One per configured key type.
    pub rotations: Vec<RotationPlan>,
    /// One per stored key whose life is not over (and retired keys' last step).
    pub keys: Vec<KeyPlan>,
}

/// The whole plan of a pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The time it was computed for (Unix seconds).
    pub at: u64,
    /// The domains, in config order.
    pub domains: Vec<DomainPlan>,
}

/// What the plan knows of the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct When {
    /// Now (Unix seconds).
    pub now: u64,
    /// When the last pass ended, to tell a clock that jumped.
    pub last_pass: Option<u64>,
    /// The seconds the machine's boot clock counted since the last pass ended, when that pass
    /// ended on this boot: the wall clock moving further than that is a jump, however long the
    /// wait between passes was.
    pub counted: Option<u64>,
}

impl When {
    /// Now is `now` (Unix seconds) and `boot` on the boot clock; the last pass is `last`.
    pub fn after(last: Option<&PassRecord>, now: u64, boot: Option<BootClock>) -> Self {
        Self {
            now,
            last_pass: last.map(|pass| pass.at),
            counted: boot
                .zip(last.and_then(|pass| pass.boot))
                .and_then(|(now, then)| now.since(then)),
        }
    }

    /// Now, with no last pass to compare the clock with.
    pub fn at(now: u64) -> Self {
        Self {
            now,
            last_pass: None,
            counted: None,
        }
    }
}

impl Plan {
    /// The plan of a pass over `domains` whose stored keys are `keys`; `forced` domains start
    /// a rotation whatever their schedule says (`rotor rotate`).
    pub fn compute(
        domains: &[DomainConfig],
        keys: &[KeyRecord],
        evidence: &evidence::Evidence,
        when: When,
        forced: &BTreeSet<String>,
    ) -> Self {
        let by_domain = ByDomain::new(keys);
        Self {
            at: when.now,
            domains: domains
                .iter()
                .map(|domain| {
                    let own = by_domain.of(domain.name.as_str());
                    let forced = forced.contains(domain.name.as_str());
                    let days = evidence::days_of(evidence, domain.name.as_str());
                    DomainPlan::compute(domain, own, days, when, forced)
                })
                .collect(),
        }
    }
}

impl DomainPlan {
    /// The plan of `domain`, whose stored keys are `keys`, with what DMARC reports said of its
    /// selectors (`days`).
    pub fn compute(
        domain: &DomainConfig,
        keys: &[KeyRecord],
        days: &[DkimDay],
        when: When,
        forced: bool,
    ) -> Self {
        let policy = &domain.policy;
        let doubt = clock_doubt(policy, when);
        let rotations = policy
            .keys
            .iter()
            .map(|&algorithm| {
                let step: Step =
                    lifecycle::rotation(keys, algorithm, policy, when.now, forced).into();
                let then = if step.action().is_some() {
                    let reserved = KeyRecord::reserved(
                        domain.name.as_str(),
                        "(new)",
                        algorithm,
                        Default::default(),
                        when.now,
                    );
                    let mut keys = keys.to_vec();
                    keys.push(reserved.clone());
                    chain(domain, &keys, &reserved, days, when, doubt.as_deref())
                } else {
                    Vec::new()
                };
                RotationPlan {
                    algorithm,
                    step,
                    then,
                }
            })
            .collect();
        let keys = keys
            .iter()
            .filter(|key| !key.phase.is_final())
            .map(|key| {
                let step = key_step(key, keys, policy, days, when.now, doubt.as_deref());
                KeyPlan {
                    selector: key.selector.clone(),
                    algorithm: key.algorithm,
                    record_name: key.record_name(),
                    zone: key.zone.clone(),
                    phase: key.phase,
                    dns: step
                        .action()
                        .map(|action| dns::changes(key, action, policy.ttl))
                        .unwrap_or_default(),
                    signers: match step.action() {
                        Some(
                            Action::Activate | Action::Retire | Action::Revoke | Action::Rollback,
                        ) => domain.signers.clone(),
                        _ => Vec::new(),
                    },
                    then: match step.action() {
                        Some(action) => {
                            let after = project(keys, key, action, when.now);
                            let key = after.iter().find(|k| k.selector == key.selector);
                            key.map(|key| chain(domain, &after, key, days, when, doubt.as_deref()))
                                .unwrap_or_default()
                        }
                        None => Vec::new(),
                    },
                    step,
                }
            })
            .collect();
        Self {
            domain: domain.name.to_string(),
            provider: domain.provider.clone(),
            zone: domain.zone.as_ref().map(ToString::to_string),
            rotations,
            keys,
        }
    }

    /// When this domain next needs a pass (Unix seconds): the earliest time one of its gates
    /// opens, or `now` while a step acts or a gate waits without a time (a clock in doubt).
    /// A gate that waits for another key of the domain counts that key's time. `None`: nothing
    /// is left to do.
    pub fn due(&self, now: u64) -> Option<u64> {
        let rotations = self.rotations.iter().map(|rotation| &rotation.step);
        rotations
            .chain(self.keys.iter().map(|key| &key.step))
            .filter_map(|step| match step {
                Step::Wait {
                    until: None,
                    gate: Gate::RotationUnderWay { .. } | Gate::SwitchTogether { .. },
                } => None,
                Step::Act { .. } | Step::Wait { until: None, .. } => Some(now),
                Step::Wait {
                    until: Some(at), ..
                } => Some(*at),
                Step::Done => None,
            })
            .min()
    }

    /// The first key that acts now, with its action.
    pub fn next_step(&self) -> Option<(&KeyPlan, Action)> {
        self.keys
            .iter()
            .find_map(|key| key.step.action().map(|action| (key, action)))
    }

    /// The keys of this plan that take `action` now.
    pub fn taking(&self, action: Action) -> impl Iterator<Item = &KeyPlan> {
        self.keys
            .iter()
            .filter(move |key| key.step.action() == Some(action))
    }
}

/// The step of `key` among its domain's `keys`: [`lifecycle::next_among`], except that a step
/// that ends a grace or revocation window by the clock is held while the clock is in doubt.
fn key_step(
    key: &KeyRecord,
    keys: &[KeyRecord],
    policy: &Policy,
    days: &[DkimDay],
    now: u64,
    doubt: Option<&str>,
) -> Step {
    let next = lifecycle::next_among(key, keys, policy, now);
    let next = evidence::hold(key, policy, days, now, next);
    let next = evidence::roll_back(key, keys, policy, days, now, next);
    match next {
        Next::Act(action) if removes_on_time(key, action) && doubt.is_some() => Step::Wait {
            until: None,
            gate: Gate::ClockInDoubt {
                held: action,
                reason: doubt.unwrap_or_default().to_string(),
            },
        },
        next => next.into(),
    }
}

/// Whether `action` on `key` ends a grace or revocation window by the clock (held when the
/// clock is in doubt). A leaked key's revocation is never held.
fn removes_on_time(key: &KeyRecord, action: Action) -> bool {
    key.compromised.is_none()
        && matches!(
            action,
            Action::Retire | Action::Revoke | Action::RemoveRevoked
        )
        && key.intent.is_none()
}

/// How much further than the boot clock the wall clock may move between two passes without
/// being taken for a jump (plus a thousandth of the time counted: NTP slews at most 500 ppm).
const JUMP_TOLERANCE: u64 = 60;

/// Why the clock cannot be trusted to end grace windows in this pass, if it cannot: it is
/// behind the last pass (it went back), or it moved further than the machine's boot clock
/// counted since then (a jump: an NTP step, a VM restored). Where the boot clock cannot tell
/// (the last pass ran on another boot), a move longer than the grace window is taken for a
/// possible jump. The next pass, with a clock that moves as it should, goes on. A wait longer
/// than the grace window on one boot (a daily timer, a grace of hours) is not a jump.
pub fn clock_doubt(policy: &Policy, when: When) -> Option<String> {
    let last = when.last_pass?;
    let now = when.now;
    if now < last {
        return Some(format!(
            "the clock ({}) is behind the last pass ({}); check NTP",
            crate::time::rfc3339(now),
            crate::time::rfc3339(last)
        ));
    }
    let moved = now - last;
    match when.counted {
        // The machine counted the time itself: a wall clock that moved further jumped.
        Some(counted) if moved > counted + JUMP_TOLERANCE + counted / 1000 => Some(format!(
            "the clock moved {moved}s since the last pass ({}) while the machine counted {counted}s: it jumped",
            crate::time::rfc3339(last)
        )),
        Some(_) => None,
        // Another boot, or no boot clock: a move longer than the grace window may be a jump
        // (a VM restored, an NTP step at boot).
        None => (moved > policy.grace.secs()).then(|| {
            format!(
                "the clock moved {moved}s since the last pass ({}), more than the grace window ({}), on another boot: a jump would end grace windows at once",
                crate::time::rfc3339(last),
                policy.grace
            )
        }),
    }
}

/// The records after `key` takes `action` successfully at `now`, as far as the plan can tell
/// without doing it (a generated key has some record).
fn project(keys: &[KeyRecord], key: &KeyRecord, action: Action, now: u64) -> Vec<KeyRecord> {
    let mut after = lifecycle::complete(keys, key, action, now);
    if action == Action::GenerateKey
        && let Some(done) = after.iter_mut().find(|k| k.selector == key.selector)
    {
        done.record.get_or_insert_with(String::new);
    }
    after
}

/// The steps `key` takes after the one under way, while each succeeds, up to the first gate or
/// propagation check (whose outcome only the servers know). Bounded: a rotation has fewer than
/// twenty steps.
fn chain(
    domain: &DomainConfig,
    keys: &[KeyRecord],
    key: &KeyRecord,
    days: &[DkimDay],
    when: When,
    doubt: Option<&str>,
) -> Vec<Step> {
    let mut keys = keys.to_vec();
    let mut key = key.clone();
    let mut steps = Vec::new();
    for _ in 0..20 {
        let step = key_step(&key, &keys, &domain.policy, days, when.now, doubt);
        let action = step.action();
        steps.push(step);
        let Some(action) = action else { break };
        if action == Action::CheckPropagation {
            break;
        }
        keys = project(&keys, &key, action, when.now);
        match keys.iter().find(|k| k.selector == key.selector) {
            Some(next) => key = next.clone(),
            None => break,
        }
    }
    steps
}

#[cfg(test)]
mod tests;
