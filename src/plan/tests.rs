//! The plan, computed from policies and key records built here (no YAML, no I/O).

use std::time::Duration;

use rotor_state::{Compromise, KeyRecord, Phase};

use super::*;
use crate::config::{
    Authoritative, DomainConfig, Interval, Policy, Propagation, RetireMode, TimeZoneName,
};

fn secs(n: u64) -> Interval {
    Interval(Duration::from_secs(n))
}

pub(crate) fn policy(keys: &[KeyAlgorithm], retire: RetireMode) -> Policy {
    Policy {
        keys: keys.to_vec(),
        selector: "rotor{yyyy}{mm}{dd}".parse().unwrap(),
        selector_ring: Vec::new(),
        rotate_every: secs(1000),
        ttl: 30,
        propagation: Propagation {
            resolvers: Vec::new(),
            authoritative: Authoritative::None,
            min_wait: secs(10),
            poll_every: secs(5),
            timeout: secs(60),
        },
        grace: secs(50),
        retire,
        revoke_for: secs(40),
        activate_window: None,
        timezone: TimeZoneName(chrono_tz::UTC),
        probe_every: Interval(Duration::ZERO),
        monitor: None,
    }
}

fn domain(policy: Policy) -> DomainConfig {
    DomainConfig {
        name: "example.com".parse().unwrap(),
        provider: "dns".into(),
        signers: vec!["a".into(), "b".into()],
        zone: None,
        policy: policy.into(),
    }
}

fn key(selector: &str, algorithm: KeyAlgorithm, phase: Phase, since: u64) -> KeyRecord {
    KeyRecord {
        phase,
        record: Some(format!("v=DKIM1; k={}; p={selector}", algorithm.dkim_k())),
        zone: Some("example.com".into()),
        published_at: Some(since),
        activated_at: (phase == Phase::Active).then_some(since),
        ..KeyRecord::reserved(
            "example.com",
            selector,
            algorithm,
            format!("/k/{selector}").into(),
            since,
        )
    }
}

fn at(now: u64) -> When {
    When::at(now)
}

fn step_of<'p>(plan: &'p DomainPlan, selector: &str) -> &'p KeyPlan {
    plan.keys
        .iter()
        .find(|k| k.selector == selector)
        .unwrap_or_else(|| panic!("{selector} not in {plan:#?}"))
}

const RSA: KeyAlgorithm = KeyAlgorithm::Rsa2048;
const ED: KeyAlgorithm = KeyAlgorithm::Ed25519;

#[test]
fn a_domain_without_keys_starts_a_rotation_per_key_type_and_chains_to_min_wait() {
    let d = domain(policy(&[RSA, ED], RetireMode::Delete));
    let plan = DomainPlan::compute(&d, &[], &[], at(100), false);
    assert_eq!(plan.rotations.len(), 2);
    for rotation in &plan.rotations {
        assert_eq!(
            rotation.step,
            Step::Act {
                action: Action::GenerateKey
            }
        );
        let actions: Vec<Option<Action>> = rotation.then.iter().map(Step::action).collect();
        assert_eq!(
            actions,
            [Some(Action::GenerateKey), Some(Action::Publish), None],
            "{rotation:#?}"
        );
        assert_eq!(
            rotation.then.last(),
            Some(&Step::Wait {
                until: Some(110),
                gate: Gate::MinWait
            })
        );
    }
}

#[test]
fn rsa_and_ed25519_switch_together() {
    let d = domain(policy(&[RSA, ED], RetireMode::Delete));
    let keys = [
        key("old-rsa", RSA, Phase::Active, 0),
        key("old-ed", ED, Phase::Active, 0),
        key("new-rsa", RSA, Phase::Propagated, 1000),
        key("new-ed", ED, Phase::Published, 1000),
    ];
    let plan = DomainPlan::compute(&d, &keys, &[], at(1020), false);
    assert_eq!(
        step_of(&plan, "new-rsa").step,
        Step::Wait {
            until: None,
            gate: Gate::SwitchTogether {
                selector: "new-ed".into(),
                algorithm: ED,
                phase: Phase::Published
            }
        }
    );
    // Once both are propagated, one activation switches both, and both old keys retire.
    let mut keys = keys;
    keys[3].phase = Phase::Propagated;
    let plan = DomainPlan::compute(&d, &keys, &[], at(1020), false);
    let (first, action) = plan.next_step().unwrap();
    assert_eq!(action, Action::Activate);
    assert_eq!(first.signers, ["a", "b"]);
    assert!(first.dns.is_empty(), "activation touches no DNS");
    let after = lifecycle::complete(&keys, &keys[2], Action::Activate, 1020);
    let phases: Vec<Phase> = after.iter().map(|k| k.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Retiring,
            Phase::Retiring,
            Phase::Active,
            Phase::Active
        ]
    );
}

#[test]
fn retirement_deletes_exactly_the_published_value_after_grace() {
    let d = domain(policy(&[RSA], RetireMode::Delete));
    let keys = [
        key("old", RSA, Phase::Retiring, 1000),
        key("new", RSA, Phase::Active, 1000),
    ];
    let plan = DomainPlan::compute(&d, &keys, &[], at(1049), false);
    assert_eq!(
        step_of(&plan, "old").step,
        Step::Wait {
            until: Some(1050),
            gate: Gate::Grace
        }
    );
    let plan = DomainPlan::compute(&d, &keys, &[], at(1050), false);
    let old = step_of(&plan, "old");
    assert_eq!(old.step.action(), Some(Action::Retire));
    assert_eq!(
        old.dns,
        [DnsChange::Delete {
            name: "old._domainkey.example.com".into(),
            value: "v=DKIM1; k=rsa; p=old".into()
        }]
    );
    assert_eq!(old.signers, ["a", "b"]);
}

#[test]
fn revoke_mode_replaces_the_record_with_an_empty_key_then_removes_it() {
    let d = domain(policy(&[RSA], RetireMode::Revoke));
    let keys = [key("old", RSA, Phase::Retiring, 1000)];
    let plan = DomainPlan::compute(&d, &keys, &[], at(1050), false);
    let old = step_of(&plan, "old");
    assert_eq!(old.step.action(), Some(Action::Revoke));
    let name = "old._domainkey.example.com".to_string();
    assert_eq!(
        old.dns,
        [
            DnsChange::Delete {
                name: name.clone(),
                value: "v=DKIM1; k=rsa; p=old".into()
            },
            DnsChange::Add {
                name: name.clone(),
                value: "v=DKIM1; k=rsa; h=sha256; p=".into(),
                ttl: 30
            }
        ]
    );
    // The chained step waits for revoke_for, then the empty record goes.
    assert_eq!(
        old.then.last(),
        Some(&Step::Wait {
            until: Some(1090),
            gate: Gate::RevokeFor
        })
    );
    let revoked = [key("old", RSA, Phase::Revoked, 1050)];
    let plan = DomainPlan::compute(&d, &revoked, &[], at(1090), false);
    assert_eq!(
        step_of(&plan, "old").dns,
        [DnsChange::Delete {
            name,
            value: "v=DKIM1; k=rsa; h=sha256; p=".into()
        }]
    );
}

#[test]
fn a_leaked_key_is_replaced_at_once_and_revoked_without_grace() {
    let mut p = policy(&[RSA], RetireMode::Delete);
    p.activate_window = Some("Mon-Fri 09:00-17:00".parse().unwrap());
    let d = domain(p);
    let leaked = Compromise {
        reason: "key file copied".into(),
        at: 500,
        skip_min_wait: true,
    };
    let active = KeyRecord {
        compromised: Some(leaked.clone()),
        ..key("leaked", RSA, Phase::Active, 0)
    };
    // The active leaked key keeps signing until its replacement is active, which starts now.
    let plan = DomainPlan::compute(&d, std::slice::from_ref(&active), &[], at(500), false);
    assert_eq!(plan.rotations[0].step.action(), Some(Action::GenerateKey));
    // Its replacement skips min_wait and the closed window.
    let new = KeyRecord {
        last_check: None,
        ..key("new", RSA, Phase::Published, 500)
    };
    let plan = DomainPlan::compute(&d, &[active.clone(), new.clone()], &[], at(500), false);
    assert_eq!(
        step_of(&plan, "new").step.action(),
        Some(Action::CheckPropagation)
    );
    let propagated = KeyRecord {
        phase: Phase::Propagated,
        ..new
    };
    let plan = DomainPlan::compute(
        &d,
        &[active.clone(), propagated.clone()],
        &[],
        at(500),
        false,
    );
    assert_eq!(step_of(&plan, "new").step.action(), Some(Action::Activate));
    // Once replaced, the leaked key is revoked at once, whatever `retire:` says.
    let after = lifecycle::complete(
        &[active, propagated.clone()],
        &propagated,
        Action::Activate,
        501,
    );
    let plan = DomainPlan::compute(&d, &after, &[], at(501), false);
    let leaked = step_of(&plan, "leaked");
    assert_eq!(leaked.step.action(), Some(Action::Revoke));
    assert_eq!(leaked.dns.len(), 2, "{leaked:#?}");
}

#[test]
fn a_leaked_key_never_published_is_revoked_without_dns_changes() {
    let d = domain(policy(&[RSA], RetireMode::Delete));
    let unpublished = KeyRecord {
        record: None,
        compromised: Some(Compromise {
            reason: "key file copied".into(),
            at: 10,
            skip_min_wait: false,
        }),
        ..key("leaked", RSA, Phase::Generated, 0)
    };
    let plan = DomainPlan::compute(&d, &[unpublished], &[], at(10), false);
    let leaked = step_of(&plan, "leaked");
    assert_eq!(leaked.step.action(), Some(Action::Revoke));
    assert!(leaked.dns.is_empty());
}

#[test]
fn an_invisible_record_is_abandoned_by_its_exact_value() {
    let d = domain(policy(&[RSA], RetireMode::Delete));
    let keys = [
        key("old", RSA, Phase::Active, 0),
        key("new", RSA, Phase::Published, 1000),
    ];
    let plan = DomainPlan::compute(&d, &keys, &[], at(1060), false);
    let new = step_of(&plan, "new");
    assert_eq!(new.step.action(), Some(Action::Abandon));
    assert_eq!(
        new.dns,
        [DnsChange::Delete {
            name: "new._domainkey.example.com".into(),
            value: "v=DKIM1; k=rsa; p=new".into()
        }]
    );
    assert!(
        new.signers.is_empty(),
        "an abandoned key never reached a signer"
    );
    assert_eq!(step_of(&plan, "old").step.action(), None);
}

#[test]
fn a_clock_in_doubt_holds_the_end_of_grace_but_not_a_revocation_of_a_leak() {
    let d = domain(policy(&[RSA], RetireMode::Delete));
    let keys = [
        key("old", RSA, Phase::Retiring, 1000),
        KeyRecord {
            compromised: Some(Compromise {
                reason: "key file copied".into(),
                at: 1000,
                skip_min_wait: false,
            }),
            ..key("leaked", RSA, Phase::Retiring, 1000)
        },
    ];
    let jumped = When {
        last_pass: Some(1001),
        ..at(5000)
    };
    let plan = DomainPlan::compute(&d, &keys, &[], jumped, false);
    assert!(
        matches!(
            &step_of(&plan, "old").step,
            Step::Wait {
                gate: Gate::ClockInDoubt { .. },
                ..
            }
        ),
        "{plan:#?}"
    );
    assert_eq!(step_of(&plan, "leaked").step.action(), Some(Action::Revoke));
    let behind = When {
        last_pass: Some(2000),
        ..at(1060)
    };
    let plan = DomainPlan::compute(&d, &keys[..1], &[], behind, false);
    let Step::Wait {
        gate: Gate::ClockInDoubt { reason, .. },
        ..
    } = &step_of(&plan, "old").step
    else {
        panic!("{plan:#?}");
    };
    assert!(reason.contains("behind the last pass"), "{reason}");
}

#[test]
fn the_boot_clock_tells_a_jump_from_a_long_wait() {
    let d = domain(policy(&[RSA], RetireMode::Delete));
    let grace = d.policy.grace.secs();
    let after = |moved: u64, counted: Option<u64>| {
        clock_doubt(
            &d.policy,
            When {
                last_pass: Some(1000),
                counted,
                ..at(1000 + moved)
            },
        )
    };
    // On one boot: a wait of twice the grace window counted by both clocks is no jump; the
    // wall clock ahead of the boot clock by more than a minute is one, however short the wait.
    assert_eq!(after(2 * grace, Some(2 * grace)), None);
    assert_eq!(after(3630, Some(3600)), None, "drift");
    let jumped = after(600, Some(60)).expect("a jump");
    assert!(
        jumped.contains("moved 600s") && jumped.contains("counted 60s"),
        "{jumped}"
    );
    // Another boot: a move longer than the grace window may be a jump.
    assert!(after(grace + 1, None).is_some());
    assert_eq!(after(grace, None), None);
}

#[test]
fn the_plan_as_json_names_gates_actions_and_changes() {
    let d = domain(policy(&[RSA], RetireMode::Delete));
    let keys = [
        key("old", RSA, Phase::Retiring, 1000),
        key("new", RSA, Phase::Active, 1000),
    ];
    let plan = Plan::compute(
        &[d],
        &keys,
        &Default::default(),
        at(1050),
        &Default::default(),
    );
    let json = serde_json::to_value(&plan).unwrap();
    let old = &json["domains"][0]["keys"][0];
    assert_eq!(old["step"]["step"], "act");
    assert_eq!(old["step"]["action"], "retire");
    assert_eq!(old["dns"][0]["change"], "delete");
    let new = &json["domains"][0]["keys"][1];
    assert_eq!(new["step"]["step"], "wait");
    assert_eq!(new["step"]["gate"], "next-rotation");
    assert_eq!(new["step"]["until"], 2000);
    assert_eq!(json["domains"][0]["rotations"][0]["algorithm"], "rsa-2048");
}
