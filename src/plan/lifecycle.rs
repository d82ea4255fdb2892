//! The pure lifecycle core: given a key's record, its domain's other keys, the policy and the
//! time, what happens next? No I/O here; the engine performs what this module decides.

use std::collections::BTreeSet;

use rotor_state::{Action, Compromise, KeyRecord, Phase};

use super::gate::Gate;
use crate::config::{Policy, RetireMode};
use crate::keys::KeyAlgorithm;

/// What a key needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Perform this action now.
    Act(Action),
    /// Nothing to do until `until` (if known), held by `gate`.
    Wait {
        /// When the gate opens, Unix seconds.
        until: Option<u64>,
        /// What the key waits for.
        gate: Gate,
    },
    /// The key's life is over.
    Done,
}

fn wait(until: u64, gate: Gate) -> Next {
    Next::Wait {
        until: Some(until),
        gate,
    }
}

/// The phase a key reaches when `action` completes.
pub fn target(action: Action) -> Phase {
    match action {
        Action::GenerateKey => Phase::Generated,
        Action::Publish => Phase::Published,
        Action::CheckPropagation => Phase::Propagated,
        Action::Activate => Phase::Active,
        Action::Retire | Action::RemoveRevoked => Phase::Retired,
        Action::Revoke => Phase::Revoked,
        Action::Abandon => Phase::Failed,
        Action::Rollback => Phase::Retiring,
    }
}

/// The next step of `key` at `now`.
pub fn next(key: &KeyRecord, policy: &Policy, now: u64) -> Next {
    if let Some(step) = key.compromised.as_ref().and_then(|_| leaked(key)) {
        return step;
    }
    if let Some(action) = key.intent {
        // A run started this and may have died midway: finish it (every action is idempotent).
        return Next::Act(action);
    }
    let prop = &policy.propagation;
    match key.phase {
        Phase::Generated if key.record.is_none() => Next::Act(Action::GenerateKey),
        Phase::Generated => Next::Act(Action::Publish),
        Phase::Published => {
            let published = key.published_at.unwrap_or(key.since);
            let ready = published + prop.min_wait.secs();
            if now < ready {
                return wait(ready, Gate::MinWait);
            }
            if now >= published + prop.timeout.secs() {
                return Next::Act(Action::Abandon);
            }
            match &key.last_check {
                Some(check) if check.at >= ready && now < check.at + prop.poll_every.secs() => {
                    let missing = check
                        .servers
                        .iter()
                        .filter(|server| !server.ok)
                        .map(|server| server.server.clone())
                        .collect();
                    wait(
                        check.at + prop.poll_every.secs(),
                        Gate::Propagation { missing },
                    )
                }
                _ => Next::Act(Action::CheckPropagation),
            }
        }
        Phase::Propagated => {
            let closed = policy
                .activate_window
                .as_ref()
                .and_then(|window| Some((window, window.next_open(now, policy.timezone.0)?)));
            match closed {
                Some((window, opens)) => wait(
                    opens,
                    Gate::Window {
                        window: window.to_string(),
                        timezone: policy.timezone.0.to_string(),
                    },
                ),
                None => Next::Act(Action::Activate),
            }
        }
        Phase::Active => wait(
            key.activated_at.unwrap_or(key.since) + policy.rotate_every.secs(),
            Gate::NextRotation,
        ),
        // A leaked key gets no grace window: it is revoked as soon as it is replaced.
        Phase::Retiring if key.compromised.is_some() => Next::Act(Action::Revoke),
        Phase::Retiring => {
            let end = key.since + policy.grace.secs();
            if now < end {
                wait(end, Gate::Grace)
            } else if policy.retire == RetireMode::Revoke {
                Next::Act(Action::Revoke)
            } else {
                Next::Act(Action::Retire)
            }
        }
        Phase::Revoked => {
            let end = key.since + policy.revoke_for.secs();
            if now < end {
                wait(end, Gate::RevokeFor)
            } else {
                Next::Act(Action::RemoveRevoked)
            }
        }
        Phase::Retired | Phase::Failed => Next::Done,
    }
}

/// `key` once reported leaked (`rotor revoke`): marked, and taken to `retiring` (revoked on the
/// next step, without grace) unless it is the active key and `force` is not set, in which case
/// it keeps signing until its replacement, started at once, is active.
pub fn mark_compromised(
    key: &KeyRecord,
    compromise: Compromise,
    force: bool,
    now: u64,
) -> KeyRecord {
    let mut marked = KeyRecord {
        compromised: Some(compromise),
        ..key.clone()
    };
    if force || key.phase != Phase::Active {
        marked.phase = Phase::Retiring;
        marked.since = now;
    }
    marked
}

/// The next step of a leaked key, whatever it was doing: it is never published, activated or
/// kept, so any step towards signing (even one under way: a half-done activation) gives way to
/// its revocation, which takes it out of every signer. `None`: an active key waits for its
/// replacement (unless `--force` moved it to `retiring`), and the steps that take a key away
/// (retire, revoke, remove the revoked record, abandon) go on.
fn leaked(key: &KeyRecord) -> Option<Next> {
    let removing = matches!(
        key.intent,
        Some(Action::Retire | Action::Revoke | Action::RemoveRevoked | Action::Abandon)
    );
    if removing {
        return None;
    }
    match key.phase {
        Phase::Generated | Phase::Published | Phase::Propagated | Phase::Retiring => {
            Some(Next::Act(Action::Revoke))
        }
        _ => None,
    }
}

/// The next step of `key` among its domain's `keys`: as [`next`], except that a propagated key
/// waits while another new key of the domain is still on its way, so that the signers switch to
/// both (RSA and Ed25519) at once.
///
/// While a domain has a leaked key not yet retired, its replacement is not held by the activation window,
/// nor by `min_wait` if the operator said `--now`.
pub fn next_among(key: &KeyRecord, keys: &[KeyRecord], policy: &Policy, now: u64) -> Next {
    let emergency = keys
        .iter()
        .filter(|other| !other.phase.is_final())
        .find_map(|other| other.compromised.as_ref());
    let urgent;
    let policy = match emergency {
        Some(compromise) => {
            let mut expedited = policy.clone();
            expedited.activate_window = None;
            if compromise.skip_min_wait {
                expedited.propagation.min_wait = crate::config::Interval(std::time::Duration::ZERO);
            }
            urgent = expedited;
            &urgent
        }
        None => policy,
    };
    let step = next(key, policy, now);
    if step != Next::Act(Action::Activate) || key.intent.is_some() {
        return step;
    }
    let on_its_way = keys.iter().find(|other| {
        other.selector != key.selector
            && other.compromised.is_none()
            && matches!(other.phase, Phase::Generated | Phase::Published)
    });
    match on_its_way {
        Some(other) => Next::Wait {
            until: None,
            gate: Gate::SwitchTogether {
                selector: other.selector.clone(),
                algorithm: other.algorithm,
                phase: other.phase,
            },
        },
        None => step,
    }
}

/// The signing slot a key fills: every RSA size shares one (a domain signs with one RSA key),
/// Ed25519 has its own. A new key replaces the active key of its slot, so changing `rsa-2048`
/// to `rsa-3072` in the config rotates the old size out.
fn slot(algorithm: KeyAlgorithm) -> &'static str {
    algorithm.dkim_k()
}

/// Whether a new key of `algorithm` should be started for a domain whose keys are `keys`.
/// `forced` is `rotor rotate`: start now if none is under way.
pub fn rotation(
    keys: &[KeyRecord],
    algorithm: KeyAlgorithm,
    policy: &Policy,
    now: u64,
    forced: bool,
) -> Next {
    let of_algorithm = || {
        keys.iter()
            .filter(|key| slot(key.algorithm) == slot(algorithm))
    };
    if let Some(pending) = of_algorithm().find(|key| {
        matches!(
            key.phase,
            Phase::Generated | Phase::Published | Phase::Propagated
        )
    }) {
        return Next::Wait {
            until: None,
            gate: Gate::RotationUnderWay {
                selector: pending.selector.clone(),
                phase: pending.phase,
            },
        };
    }
    if forced {
        return Next::Act(Action::GenerateKey);
    }
    let hold = policy.monitor.as_ref().map_or(0, |m| m.window.secs());
    if let Some((selector, at)) = of_algorithm()
        .filter_map(|key| Some((&key.selector, key.rolled_back_at?)))
        .max_by_key(|(_, at)| *at)
        && now < at + hold
    {
        return wait(
            at + hold,
            Gate::RolledBack {
                selector: selector.clone(),
            },
        );
    }
    if let Some(failed) = of_algorithm()
        .filter(|key| key.phase == Phase::Failed)
        .max_by_key(|key| key.since)
    {
        let retry = failed.since + policy.propagation.timeout.secs();
        let newer_active = of_algorithm()
            .any(|key| key.phase == Phase::Active && key.created_at > failed.created_at);
        if !newer_active && now < retry {
            return wait(
                retry,
                Gate::RetryAfterFailure {
                    selector: failed.selector.clone(),
                },
            );
        }
    }
    let active = of_algorithm()
        .filter(|key| key.phase == Phase::Active)
        .max_by_key(|key| key.activated_at.unwrap_or(key.since));
    match active {
        // The config now asks for another RSA size, or the key leaked: replace it now.
        Some(key) if key.algorithm != algorithm || key.compromised.is_some() => {
            Next::Act(Action::GenerateKey)
        }
        Some(key) => {
            let due = key.activated_at.unwrap_or(key.since) + policy.rotate_every.secs();
            if now < due {
                wait(due, Gate::NextRotation)
            } else {
                Next::Act(Action::GenerateKey)
            }
        }
        None => Next::Act(Action::GenerateKey),
    }
}

/// The selector for a new key: the template's, with `-2`, `-3`, … appended while it is taken.
pub fn choose_selector(base: &str, taken: &BTreeSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .expect("an unused suffix exists")
}

/// The selectors of `ring` a new key may take, best first: none held by a key whose life is not
/// over (a name is reused only once its last key is retired or failed, its record gone), and
/// the least recently used first (never used ones before all).
pub fn ring_order(ring: &[String], keys: &[KeyRecord]) -> Vec<String> {
    let last_use = |name: &str| {
        keys.iter()
            .filter(|key| key.selector == name)
            .map(|key| key.created_at + 1)
            .max()
            .unwrap_or(0)
    };
    let mut free: Vec<&String> = ring
        .iter()
        .filter(|name| {
            !keys
                .iter()
                .any(|key| key.selector == **name && !key.phase.is_final())
        })
        .collect();
    free.dedup();
    free.sort_by_key(|name| last_use(name));
    free.into_iter().cloned().collect()
}

/// The records of `keys` after `key` completes `action` at `now`: its new phase. An activation
/// switches every propagated key of the domain at once (see [`next_among`]), and moves the
/// previously active key of each of their slots to its grace window.
pub fn complete(keys: &[KeyRecord], key: &KeyRecord, action: Action, now: u64) -> Vec<KeyRecord> {
    if action == Action::Rollback {
        return rolled_back(keys, key, now);
    }
    // A leaked key is never activated, not even together with another.
    let activated = |other: &KeyRecord| {
        action == Action::Activate
            && other.compromised.is_none()
            && (other.selector == key.selector || other.phase == Phase::Propagated)
    };
    let slots: BTreeSet<&str> = keys
        .iter()
        .filter(|other| activated(other))
        .map(|other| slot(other.algorithm))
        .chain([slot(key.algorithm)])
        .collect();
    keys.iter()
        .map(|other| {
            let mut next = other.clone();
            if other.selector != key.selector && activated(other) {
                next.phase = Phase::Active;
                next.since = now;
                next.activated_at = Some(now);
                next.error = None;
            } else if other.selector == key.selector {
                next = key.clone();
                next.intent = None;
                next.error = None;
                next.phase = target(action);
                if next.phase != key.phase {
                    next.since = now;
                }
                match action {
                    Action::Publish => next.published_at = Some(now),
                    Action::Activate => next.activated_at = Some(now),
                    _ => {}
                }
            } else if action == Action::Activate
                && other.phase == Phase::Active
                && slots.contains(slot(other.algorithm))
            {
                next.phase = Phase::Retiring;
                next.since = now;
            }
            next
        })
        .collect()
}

/// The key a rollback of `key` restores: the most recently replaced key of its slot, still in
/// its grace window (published, installed), not leaked.
pub fn restorable<'k>(keys: &'k [KeyRecord], key: &KeyRecord) -> Option<&'k KeyRecord> {
    keys.iter()
        .filter(|other| {
            other.selector != key.selector
                && other.phase == Phase::Retiring
                && other.compromised.is_none()
                && other.intent.is_none()
                && slot(other.algorithm) == slot(key.algorithm)
        })
        .max_by_key(|other| other.since)
}

/// `keys` after the rollback of the active `key`: the key it replaced signs again, and `key`
/// goes to its grace window (mail signed with it may be in flight), marked rolled back.
fn rolled_back(keys: &[KeyRecord], key: &KeyRecord, now: u64) -> Vec<KeyRecord> {
    let restored = restorable(keys, key).map(|k| k.selector.clone());
    keys.iter()
        .map(|other| {
            let mut next = other.clone();
            if other.selector == key.selector {
                next = key.clone();
                next.intent = None;
                next.error = None;
                next.phase = Phase::Retiring;
                next.since = now;
                next.rolled_back_at = Some(now);
            } else if Some(&other.selector) == restored.as_ref() {
                next.phase = Phase::Active;
                next.since = now;
                next.error = None;
            }
            next
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use rotor_state::{Check, ServerCheck};

    fn policy() -> Policy {
        let yaml = "state_dir: /s\nkey_dir: /k\ndefaults:\n  rotate_every: 100s\n  ttl: 30\n  grace: 50s\n  propagation: {min_wait: 10s, poll_every: 5s, timeout: 60s}\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: opendkim, key_table: /kt, signing_table: /st, key_dir: /kd, reload: 'true'}\ndomains:\n  - {name: example.com, provider: p, signers: [s]}\n";
        Config::parse(yaml, std::path::Path::new("t.yaml"))
            .unwrap()
            .domains[0]
            .policy
            .as_ref()
            .clone()
    }

    fn key(selector: &str, phase: Phase, since: u64) -> KeyRecord {
        let reserved = KeyRecord::reserved(
            "example.com",
            selector,
            KeyAlgorithm::Rsa2048,
            format!("/k/{selector}").into(),
            since,
        );
        KeyRecord {
            phase,
            record: Some("v=DKIM1; k=rsa; p=X".into()),
            zone: Some("example.com".into()),
            published_at: Some(since),
            activated_at: Some(since),
            ..reserved
        }
    }

    fn check(at: u64, ok: bool) -> Option<Check> {
        Some(Check {
            at,
            servers: vec![ServerCheck {
                server: "127.0.0.1:5302".into(),
                role: "authoritative".into(),
                ok,
                detail: String::new(),
            }],
        })
    }

    #[test]
    fn a_new_key_is_generated_then_published() {
        let mut k = key("a", Phase::Generated, 0);
        k.record = None;
        assert_eq!(next(&k, &policy(), 0), Next::Act(Action::GenerateKey));
        k.record = Some("v=DKIM1; p=X".into());
        assert_eq!(next(&k, &policy(), 0), Next::Act(Action::Publish));
    }

    #[test]
    fn propagation_waits_for_min_wait_then_polls() {
        let p = policy();
        let mut k = key("a", Phase::Published, 100);
        assert!(matches!(
            next(&k, &p, 105),
            Next::Wait {
                until: Some(110),
                ..
            }
        ));
        assert_eq!(next(&k, &p, 110), Next::Act(Action::CheckPropagation));
        k.last_check = check(111, false);
        let Next::Wait { until, gate } = next(&k, &p, 113) else {
            panic!()
        };
        assert_eq!(until, Some(116));
        assert!(gate.to_string().contains("127.0.0.1:5302"), "{gate}");
        assert_eq!(next(&k, &p, 116), Next::Act(Action::CheckPropagation));
        assert_eq!(
            next(&k, &p, 160),
            Next::Act(Action::Abandon),
            "timeout: the key fails"
        );
    }

    #[test]
    fn a_check_before_min_wait_does_not_count() {
        let mut k = key("a", Phase::Published, 100);
        k.last_check = check(101, false);
        assert_eq!(
            next(&k, &policy(), 112),
            Next::Act(Action::CheckPropagation)
        );
    }

    #[test]
    fn retirement_waits_for_the_grace_window() {
        let mut p = policy();
        let k = key("a", Phase::Retiring, 100);
        assert!(matches!(
            next(&k, &p, 149),
            Next::Wait {
                until: Some(150),
                ..
            }
        ));
        assert_eq!(next(&k, &p, 150), Next::Act(Action::Retire));
        p.retire = RetireMode::Revoke;
        assert_eq!(next(&k, &p, 150), Next::Act(Action::Revoke));
        let revoked = key("a", Phase::Revoked, 150);
        assert!(matches!(next(&revoked, &p, 151), Next::Wait { .. }));
        assert_eq!(
            next(&revoked, &p, 150 + p.revoke_for.secs()),
            Next::Act(Action::RemoveRevoked)
        );
    }

    #[test]
    fn an_interrupted_action_is_resumed_first() {
        let mut k = key("a", Phase::Retiring, 100);
        k.intent = Some(Action::Retire);
        assert_eq!(next(&k, &policy(), 101), Next::Act(Action::Retire));
    }

    #[test]
    fn rotation_starts_when_due_and_never_twice() {
        let p = policy();
        let alg = KeyAlgorithm::Rsa2048;
        assert_eq!(
            rotation(&[], alg, &p, 0, false),
            Next::Act(Action::GenerateKey)
        );
        let active = key("a", Phase::Active, 100);
        assert!(matches!(
            rotation(std::slice::from_ref(&active), alg, &p, 150, false),
            Next::Wait {
                until: Some(200),
                ..
            }
        ));
        assert_eq!(
            rotation(std::slice::from_ref(&active), alg, &p, 200, false),
            Next::Act(Action::GenerateKey)
        );
        assert_eq!(
            rotation(std::slice::from_ref(&active), alg, &p, 150, true),
            Next::Act(Action::GenerateKey)
        );
        let pending = key("b", Phase::Published, 200);
        assert!(matches!(
            rotation(&[active.clone(), pending], alg, &p, 300, true),
            Next::Wait { until: None, .. }
        ));
        // Another algorithm's key does not count.
        assert_eq!(
            rotation(&[active], KeyAlgorithm::Ed25519, &p, 150, false),
            Next::Act(Action::GenerateKey)
        );
    }

    #[test]
    fn a_new_rsa_size_replaces_the_old_one() {
        let p = policy();
        let active = key("a", Phase::Active, 100);
        assert_eq!(
            rotation(
                std::slice::from_ref(&active),
                KeyAlgorithm::Rsa3072,
                &p,
                150,
                false
            ),
            Next::Act(Action::GenerateKey)
        );
        let new = KeyRecord {
            algorithm: KeyAlgorithm::Rsa3072,
            ..key("b", Phase::Propagated, 150)
        };
        let after = complete(&[active, new.clone()], &new, Action::Activate, 160);
        assert_eq!(
            after[0].phase,
            Phase::Retiring,
            "the 2048-bit key leaves the RSA slot"
        );
        assert!(matches!(
            rotation(&after, KeyAlgorithm::Rsa3072, &p, 170, false),
            Next::Wait {
                until: Some(260),
                ..
            }
        ));
    }

    #[test]
    fn a_failed_rotation_is_retried_after_the_timeout() {
        let p = policy();
        let active = key("a", Phase::Active, 0);
        let failed = key("b", Phase::Failed, 200);
        let keys = [active, failed];
        assert!(matches!(
            rotation(&keys, KeyAlgorithm::Rsa2048, &p, 230, false),
            Next::Wait {
                until: Some(260),
                ..
            }
        ));
        assert_eq!(
            rotation(&keys, KeyAlgorithm::Rsa2048, &p, 260, false),
            Next::Act(Action::GenerateKey)
        );
    }

    #[test]
    fn activation_moves_the_old_key_to_its_grace_window() {
        let old = key("a", Phase::Active, 0);
        let new = key("b", Phase::Propagated, 50);
        let after = complete(&[old, new.clone()], &new, Action::Activate, 60);
        assert_eq!((after[0].phase, after[0].since), (Phase::Retiring, 60));
        assert_eq!(
            (after[1].phase, after[1].activated_at),
            (Phase::Active, Some(60))
        );
    }

    #[test]
    fn selectors_are_never_reused() {
        let taken: BTreeSet<String> =
            ["rotor20261123".to_string(), "rotor20261123-2".to_string()].into();
        assert_eq!(choose_selector("rotor20261123", &taken), "rotor20261123-3");
        assert_eq!(choose_selector("rotor20261124", &taken), "rotor20261124");
    }

    #[test]
    fn activation_waits_for_the_window() {
        let mut policy = policy();
        policy.activate_window = Some("Mon-Fri 04:00-06:00".parse().unwrap());
        // Saturday 2026-12-05 12:00 UTC: the window opens on Monday 04:00.
        let saturday = 1_796_472_000;
        let monday_4am = saturday + 2 * 86400 - 8 * 3600;
        let key = key("a", Phase::Propagated, saturday - 60);
        assert_eq!(
            next(&key, &policy, saturday),
            wait(
                monday_4am,
                Gate::Window {
                    window: "Mon-Fri 04:00-06:00".into(),
                    timezone: "UTC".into()
                }
            )
        );
        assert_eq!(next(&key, &policy, monday_4am), Next::Act(Action::Activate));
        // A step already under way when the window closed is finished.
        let resumed = KeyRecord {
            intent: Some(Action::Activate),
            ..key
        };
        assert_eq!(
            next(&resumed, &policy, saturday),
            Next::Act(Action::Activate)
        );
    }

    #[test]
    fn a_ring_reuses_the_least_recently_used_free_selector() {
        let ring: Vec<String> = ["s1", "s2", "s3"].map(String::from).to_vec();
        assert_eq!(ring_order(&ring, &[]), ring, "never used: in ring order");
        let keys = [
            key("s1", Phase::Retired, 10),
            key("s2", Phase::Active, 20),
            key("s3", Phase::Retired, 5),
        ];
        assert_eq!(ring_order(&ring, &keys), ["s3", "s1"]);
        let busy = [key("s1", Phase::Retiring, 10), key("s2", Phase::Active, 20)];
        assert_eq!(ring_order(&ring[..2], &busy), Vec::<String>::new());
    }
}
