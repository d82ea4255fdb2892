//! What DMARC aggregate reports change in the plan (with `monitor:`): a replaced key is retired
//! only once reports have shown the domain's mail without its selector for
//! `retire_when_silent` (capped by `max_wait` from the replacement), and an active key whose
//! selector fails in reports above `max_fail_rate` raises an alert. Pure: the reports come as
//! the store's [`DkimDay`] counts.

use std::collections::BTreeMap;

use rotor_state::{Action, DkimDay, KeyRecord, Phase};

use super::gate::Gate;
use super::lifecycle::Next;
use crate::config::Policy;

const DAY: u64 = 86_400;

/// What reports said, by domain (the store's [`DkimDay`] counts).
pub type Evidence = BTreeMap<String, Vec<DkimDay>>;

/// What reports said of `domain`'s selectors (none: empty).
pub fn days_of<'e>(evidence: &'e Evidence, domain: &str) -> &'e [DkimDay] {
    evidence.get(domain).map_or(&[][..], Vec::as_slice)
}

/// One selector's results in reports since a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Messages whose signature passed.
    pub pass: u64,
    /// Messages whose signature failed.
    pub fail: u64,
    /// Messages with another result.
    pub other: u64,
    /// The end of the last day it was seen (Unix seconds).
    pub last_seen: u64,
}

impl Totals {
    /// Messages in all.
    pub fn messages(&self) -> u64 {
        self.pass + self.fail + self.other
    }

    /// The share of messages whose signature did not pass.
    pub fn fail_rate(&self) -> f64 {
        match self.messages() {
            0 => 0.0,
            all => (self.fail + self.other) as f64 / all as f64,
        }
    }
}

/// Per selector of `days`: the results of the days that start at or after `from`'s day.
pub fn totals_since(days: &[DkimDay], from: u64) -> BTreeMap<String, Totals> {
    let start = from - from % DAY;
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for day in days.iter().filter(|d| d.day >= start) {
        let entry = totals.entry(day.selector.clone()).or_default();
        entry.pass += day.pass;
        entry.fail += day.fail;
        entry.other += day.other;
        entry.last_seen = entry.last_seen.max(day.day + DAY);
    }
    totals
}

/// `next` for `key`, held while reports do not show its selector silent yet: a retiring key's
/// retirement (or revocation) after its grace window waits for `retire_when_silent` of
/// reports without it, at most until `max_wait` after it was replaced.
pub fn hold(key: &KeyRecord, policy: &Policy, days: &[DkimDay], now: u64, next: Next) -> Next {
    let Some(monitor) = &policy.monitor else {
        return next;
    };
    let retiring = key.phase == Phase::Retiring
        && key.compromised.is_none()
        && key.intent.is_none()
        && matches!(next, Next::Act(Action::Retire | Action::Revoke));
    if !retiring {
        return next;
    }
    let cap = key.since + monitor.max_wait.secs();
    if now >= cap {
        return next;
    }
    let seen = totals_since(days, key.since)
        .get(&key.selector)
        .map_or(0, |t| t.last_seen);
    let silent_from = seen.max(key.since);
    let until = silent_from + monitor.retire_when_silent.secs();
    if now < until {
        let gate = match seen {
            0 => Gate::AwaitingReports,
            last_seen => Gate::StillSeen { last_seen },
        };
        return Next::Wait {
            until: Some(until.min(cap)),
            gate,
        };
    }
    // Silence is shown by reports of the domain's mail (other selectors) on days after the
    // selector's last: not by reports that stopped coming.
    let reported_after = days
        .iter()
        .filter(|d| d.selector != key.selector && d.pass + d.fail + d.other > 0)
        .map(|d| d.day + DAY)
        .max()
        .unwrap_or(0);
    if reported_after > silent_from {
        next
    } else {
        Next::Wait {
            until: Some(cap),
            gate: Gate::AwaitingReports,
        }
    }
}

/// `next` for the active `key`, or a rollback: with `monitor.rollback`, a new key failing in
/// reports (see [`failing`]) gives way to the key it replaced while that one is still in its
/// grace window.
pub fn roll_back(
    key: &KeyRecord,
    keys: &[KeyRecord],
    policy: &Policy,
    days: &[DkimDay],
    now: u64,
    next: Next,
) -> Next {
    let rollback = policy.monitor.as_ref().is_some_and(|m| m.rollback);
    let waiting = matches!(next, Next::Wait { .. });
    if rollback
        && waiting
        && key.intent.is_none()
        && key.compromised.is_none()
        && failing(key, policy, days, now).is_some()
        && super::lifecycle::restorable(keys, key).is_some()
    {
        Next::Act(Action::Rollback)
    } else {
        next
    }
}

/// The alert for an active `key` whose selector fails in reports: over `min_messages` since its
/// activation (within `window`), a failure rate above `max_fail_rate`.
pub fn failing(key: &KeyRecord, policy: &Policy, days: &[DkimDay], now: u64) -> Option<String> {
    let monitor = policy.monitor.as_ref()?;
    if key.phase != Phase::Active {
        return None;
    }
    let activated = key.activated_at.unwrap_or(key.since);
    if now > activated + monitor.window.secs() {
        return None;
    }
    let totals = totals_since(days, activated).remove(&key.selector)?;
    if totals.messages() < monitor.min_messages || totals.fail_rate() <= monitor.max_fail_rate.0 {
        return None;
    }
    Some(format!(
        "DMARC reports: {:.1}% of {} messages signed with {} failed DKIM since its switch (above monitor.max_fail_rate {})",
        totals.fail_rate() * 100.0,
        totals.messages(),
        key.selector,
        monitor.max_fail_rate
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rotor_state::KeyAlgorithm;

    use super::*;
    use crate::config::Percent;

    fn monitor() -> crate::config::Monitor {
        crate::config::Monitor {
            window: crate::config::Interval(std::time::Duration::from_secs(7 * DAY)),
            min_messages: 10,
            max_fail_rate: Percent(0.05),
            rollback: false,
            retire_when_silent: crate::config::Interval(std::time::Duration::from_secs(2 * DAY)),
            max_wait: crate::config::Interval(std::time::Duration::from_secs(30 * DAY)),
        }
    }

    fn day(selector: &str, day: u64, pass: u64, fail: u64) -> DkimDay {
        DkimDay {
            domain: "example.com".into(),
            selector: selector.into(),
            day: day * DAY,
            pass,
            fail,
            other: 0,
            orgs: BTreeSet::from(["google.com".into()]),
        }
    }

    fn retiring(since_day: u64) -> KeyRecord {
        KeyRecord {
            phase: Phase::Retiring,
            since: since_day * DAY,
            ..KeyRecord::reserved(
                "example.com",
                "old",
                KeyAlgorithm::Rsa2048,
                Default::default(),
                0,
            )
        }
    }

    #[test]
    fn a_replaced_selector_still_in_reports_holds_its_retirement() {
        let key = retiring(10);
        let monitor = monitor();
        let retire = Next::Act(Action::Retire);
        // Reports: the old selector still seen on day 12, the new one every day.
        let days = [
            day("old", 12, 5, 0),
            day("new", 12, 90, 0),
            day("new", 13, 90, 0),
        ];
        let policy_days = |days: &[DkimDay], now: u64| {
            let mut policy = crate::plan::tests::policy(
                &[KeyAlgorithm::Rsa2048],
                crate::config::RetireMode::Delete,
            );
            policy.monitor = Some(monitor.clone());
            hold(&key, &policy, days, now, retire.clone())
        };
        assert_eq!(
            policy_days(&days, 14 * DAY),
            Next::Wait {
                until: Some(15 * DAY),
                gate: Gate::StillSeen {
                    last_seen: 13 * DAY
                }
            }
        );
        // Reports through day 15 show the domain's mail without it: retired.
        let later = [&days[..], &[day("new", 15, 80, 0)]].concat();
        assert_eq!(policy_days(&later, 16 * DAY), retire);
        // No report at all since the switch: it waits, until max_wait, and then retires.
        assert_eq!(
            policy_days(&[], 20 * DAY),
            Next::Wait {
                until: Some(40 * DAY),
                gate: Gate::AwaitingReports
            }
        );
        assert_eq!(policy_days(&[], 40 * DAY), retire);
    }

    #[test]
    fn a_new_selector_failing_in_reports_raises_an_alert() {
        let mut policy =
            crate::plan::tests::policy(&[KeyAlgorithm::Rsa2048], crate::config::RetireMode::Delete);
        policy.monitor = Some(monitor());
        let key = KeyRecord {
            phase: Phase::Active,
            activated_at: Some(10 * DAY),
            ..KeyRecord::reserved(
                "example.com",
                "new",
                KeyAlgorithm::Rsa2048,
                Default::default(),
                0,
            )
        };
        let healthy = [day("new", 10, 95, 4)];
        assert_eq!(failing(&key, &policy, &healthy, 11 * DAY), None);
        let few = [day("new", 10, 1, 3)];
        assert_eq!(
            failing(&key, &policy, &few, 11 * DAY),
            None,
            "under min_messages"
        );
        let bad = [day("new", 10, 80, 20), day("old", 10, 50, 0)];
        let alert = failing(&key, &policy, &bad, 11 * DAY).unwrap();
        assert!(
            alert.contains("20.0% of 100 messages signed with new failed"),
            "{alert}"
        );
        assert_eq!(
            failing(&key, &policy, &bad, 18 * DAY),
            None,
            "after the window"
        );
    }

    #[test]
    fn a_failing_selector_rolls_back_only_to_a_published_key_that_did_not_leak() {
        let mut policy =
            crate::plan::tests::policy(&[KeyAlgorithm::Rsa2048], crate::config::RetireMode::Delete);
        policy.monitor = Some(crate::config::Monitor {
            rollback: true,
            ..monitor()
        });
        let new = KeyRecord {
            phase: Phase::Active,
            activated_at: Some(10 * DAY),
            ..KeyRecord::reserved(
                "example.com",
                "new",
                KeyAlgorithm::Rsa2048,
                Default::default(),
                0,
            )
        };
        let old = retiring(10);
        let bad = [day("new", 10, 80, 20)];
        let waiting = Next::Wait {
            until: None,
            gate: Gate::NextRotation,
        };
        let keys = [old.clone(), new.clone()];
        let step = roll_back(&new, &keys, &policy, &bad, 11 * DAY, waiting.clone());
        assert_eq!(step, Next::Act(Action::Rollback));
        let after = super::super::lifecycle::complete(&keys, &new, Action::Rollback, 11 * DAY);
        assert_eq!(after[0].phase, Phase::Active, "the old key signs again");
        assert_eq!(after[1].phase, Phase::Retiring);
        assert_eq!(after[1].rolled_back_at, Some(11 * DAY));
        // A leaked previous key is never brought back: alert only.
        let leaked = KeyRecord {
            compromised: Some(rotor_state::Compromise {
                reason: "leaked".into(),
                at: 10 * DAY,
                skip_min_wait: false,
            }),
            ..old
        };
        let keys = [leaked, new.clone()];
        assert_eq!(
            roll_back(&new, &keys, &policy, &bad, 11 * DAY, waiting.clone()),
            waiting
        );
        // Without rollback: true, never.
        policy.monitor = Some(monitor());
        let keys = [retiring(10), new.clone()];
        assert_eq!(
            roll_back(&new, &keys, &policy, &bad, 11 * DAY, waiting.clone()),
            waiting
        );
    }
}
