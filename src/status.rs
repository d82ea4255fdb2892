//! What `rotor status` and `rotor plan` show.

use std::collections::{BTreeMap, HashMap, HashSet};

use rotor_common::ErrorKind;
use rotor_state::{DkimDay, KeyAlgorithm, KeyRecord, PassRecord, Phase, ProbeResult, ServerCheck};
use serde::Serialize;

use crate::config::DomainConfig;
use crate::plan::evidence::{Evidence, Totals, totals_since};
use crate::plan::{DnsChange, DomainPlan, Gate, Plan, Step, When};
use crate::time::rfc3339;

/// One row of `rotor status`: a key, or a domain that has none yet.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    /// The domain.
    pub domain: String,
    /// The key's selector.
    pub selector: Option<String>,
    /// Where its record lives: the selector's name, or the end of its alias chain.
    pub record_name: Option<String>,
    /// The key's algorithm.
    pub algorithm: Option<KeyAlgorithm>,
    /// The key's phase.
    pub phase: Option<String>,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// When the next step is due (RFC 3339), if known.
    pub next_at: Option<String>,
    /// What the key waits for, or the step it takes on the next run.
    pub waiting_for: Option<String>,
    /// The gate that holds it, if one does.
    pub gate: Option<Gate>,
    /// The last error.
    pub error: Option<String>,
    /// Its kind: `transient` (retried as it is), `needs-operator`, `conflict`.
    pub error_kind: Option<ErrorKind>,
    /// When the last propagation check ran (RFC 3339).
    pub checked_at: Option<String>,
    /// The last propagation check, server by server.
    pub servers: Vec<ServerCheck>,
    /// Each signer's state after the last switch concerning this key.
    pub signers: BTreeMap<String, String>,
    /// Each signer's last probe with this key: whether it signed a probe message validly.
    pub probes: BTreeMap<String, ProbeResult>,
    /// What DMARC aggregate reports said of its selector (active and retiring keys).
    pub dmarc: Option<Totals>,
}

impl KeyStatus {
    /// The row of `key`, whose domain's plan is `plan`: its step, or what holds it. A failed
    /// key shows its domain's next rotation of its type (the retry).
    fn new(key: &KeyRecord, plan: &DomainPlan, days: &[DkimDay], now: u64) -> Self {
        let step = match key.phase {
            Phase::Failed => plan
                .rotations
                .iter()
                .find(|r| r.algorithm.dkim_k() == key.algorithm.dkim_k())
                .map(|r| r.step.clone()),
            _ => plan
                .keys
                .iter()
                .find(|k| k.selector == key.selector)
                .map(|k| k.step.clone()),
        }
        .unwrap_or(Step::Done);
        let (next_at, waiting_for, gate) = match step {
            Step::Act { action } if key.phase == Phase::Failed => (
                Some(rfc3339(now)),
                Some(format!("next run: retry the rotation ({action})")),
                None,
            ),
            Step::Act { action } => (
                Some(rfc3339(now)),
                Some(format!("next run: {action}")),
                None,
            ),
            Step::Wait { until, gate } => (until.map(rfc3339), Some(gate.to_string()), Some(gate)),
            Step::Done => (None, None, None),
        };
        Self {
            domain: key.domain.clone(),
            selector: Some(key.selector.clone()),
            record_name: Some(key.record_name()),
            algorithm: Some(key.algorithm),
            phase: Some(key.phase.to_string()),
            since: Some(rfc3339(key.since)),
            next_at,
            waiting_for,
            gate,
            error: key.error.clone(),
            error_kind: key.error.as_ref().and(key.error_kind),
            checked_at: key.last_check.as_ref().map(|c| rfc3339(c.at)),
            servers: key
                .last_check
                .as_ref()
                .map(|c| c.servers.clone())
                .unwrap_or_default(),
            signers: key.signers.clone(),
            probes: key.probes.clone(),
            dmarc: matches!(key.phase, Phase::Active | Phase::Retiring)
                .then(|| totals_since(days, 0).remove(&key.selector))
                .flatten(),
        }
    }

    fn without_keys(domain: &DomainConfig) -> Self {
        Self {
            domain: domain.name.to_string(),
            selector: None,
            record_name: None,
            algorithm: None,
            phase: None,
            since: None,
            next_at: None,
            waiting_for: Some("first rotation on the next run".into()),
            gate: None,
            error: None,
            error_kind: None,
            checked_at: None,
            servers: Vec::new(),
            signers: BTreeMap::new(),
            probes: BTreeMap::new(),
            dmarc: None,
        }
    }
}

/// `keys` by domain, each domain's in their order in `keys`.
fn by_domain(keys: &[KeyRecord]) -> HashMap<&str, Vec<&KeyRecord>> {
    let mut grouped: HashMap<&str, Vec<&KeyRecord>> = HashMap::new();
    for key in keys {
        grouped.entry(key.domain.as_str()).or_default().push(key);
    }
    grouped
}

/// The status rows of `domains`, whose stored keys are `keys`.
pub fn rows(
    domains: &[&DomainConfig],
    keys: &[KeyRecord],
    evidence: &Evidence,
    all: bool,
    now: u64,
) -> Vec<KeyStatus> {
    let grouped = by_domain(keys);
    let mut rows = Vec::with_capacity(domains.len());
    for domain in domains {
        let mut theirs: Vec<KeyRecord> = grouped
            .get(domain.name.as_str())
            .map(|keys| keys.iter().map(|&k| k.clone()).collect())
            .unwrap_or_default();
        theirs.sort_by(|a, b| (a.created_at, &a.selector).cmp(&(b.created_at, &b.selector)));
        // Retired keys are history; a failed key stays in view until a newer key of its
        // algorithm exists.
        let newer = |k: &KeyRecord| {
            theirs
                .iter()
                .any(|o| o.algorithm == k.algorithm && o.created_at > k.created_at)
        };
        let shown: Vec<&KeyRecord> = theirs
            .iter()
            .filter(|k| all || !k.phase.is_final() || (k.phase == Phase::Failed && !newer(k)))
            .collect();
        if shown.is_empty() {
            rows.push(KeyStatus::without_keys(domain));
        }
        let when = When::at(now);
        let days = evidence
            .get(domain.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let plan = DomainPlan::compute(domain, &theirs, days, when, false);
        rows.extend(
            shown
                .into_iter()
                .map(|key| KeyStatus::new(key, &plan, days, now)),
        );
    }
    rows
}

/// What an orphan key waits for.
const ORPHAN: &str = "its domain is no longer in the config: its record, private key and signer rows stay as they are until the domain is put back (rotor retires only what it manages)";

/// Rows for the keys, not yet retired, of domains that are no longer in the config (`known`):
/// rotor does nothing more with them, so they are shown rather than forgotten.
pub fn orphans(known: &[&DomainConfig], keys: &[KeyRecord]) -> Vec<KeyStatus> {
    let known: HashSet<&str> = known.iter().map(|d| d.name.as_str()).collect();
    keys.iter()
        .filter(|key| !key.phase.is_final())
        .filter(|key| !known.contains(key.domain.as_str()))
        .map(|key| KeyStatus {
            domain: key.domain.clone(),
            selector: Some(key.selector.clone()),
            record_name: Some(key.record_name()),
            algorithm: Some(key.algorithm),
            phase: Some(key.phase.to_string()),
            since: Some(rfc3339(key.since)),
            next_at: None,
            waiting_for: Some(ORPHAN.to_string()),
            gate: None,
            error: key.error.clone(),
            error_kind: key.error.as_ref().and(key.error_kind),
            checked_at: key.last_check.as_ref().map(|c| rfc3339(c.at)),
            servers: Vec::new(),
            signers: key.signers.clone(),
            probes: key.probes.clone(),
            dmarc: None,
        })
        .collect()
}

/// The domains with [`orphans`], each once, for warnings.
pub fn orphan_domains(known: &[&DomainConfig], keys: &[KeyRecord]) -> Vec<String> {
    let mut names: Vec<String> = orphans(known, keys)
        .into_iter()
        .map(|row| row.domain)
        .collect();
    names.dedup();
    names
}

/// How healthy the keys are, for monitoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Every key where it should be.
    Ok,
    /// A step keeps failing, a rotation is overdue, or a key stays in a phase too long.
    Warning,
    /// A key failed.
    Critical,
}

impl Health {
    /// The exit code of `rotor status`: 0, 1 or 2.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The Nagios word.
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
        }
    }
}

/// What needs attention in `domains`' keys at `now`, worst first, with the overall health.
/// Overdue means older than `rotate_every` plus `propagation.timeout` (a rotation that starts
/// on time is done by then); stalled means in a transient phase longer than that margin.
/// `shown` are the rows of `domains` without `all` ([`rows`] with `all` false).
pub fn health_of(
    shown: &[KeyStatus],
    domains: &[&DomainConfig],
    keys: &[KeyRecord],
    evidence: &Evidence,
    now: u64,
) -> (Health, Vec<String>) {
    let mut findings: Vec<(Health, String)> = Vec::new();
    for row in shown {
        let (Some(selector), Some(phase)) = (&row.selector, &row.phase) else {
            continue;
        };
        let what = format!("{} {selector}", row.domain);
        if phase == "failed" {
            let error = row.error.as_deref().unwrap_or("failed");
            findings.push((Health::Critical, format!("{what} failed: {error}")));
        } else if let Some(error) = &row.error {
            let kind = row.error_kind.map(|k| format!(", {k}")).unwrap_or_default();
            findings.push((Health::Warning, format!("{what} ({phase}{kind}): {error}")));
        }
        if phase == "active" {
            for (signer, probe) in row.probes.iter().filter(|(_, p)| !p.ok) {
                findings.push((
                    Health::Warning,
                    format!(
                        "{what}: signer {signer}'s probe failed at {}: {}",
                        rfc3339(probe.at),
                        probe.detail
                    ),
                ));
            }
        }
    }
    let grouped = by_domain(keys);
    for domain in domains {
        let days = evidence
            .get(domain.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let theirs = grouped
            .get(domain.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        for &key in theirs {
            if let Some(alert) = crate::plan::evidence::failing(key, &domain.policy, days, now) {
                findings.push((
                    Health::Warning,
                    format!("{} {}: {alert}", key.domain, key.selector),
                ));
            }
        }
        let margin = domain.policy.propagation.timeout.secs();
        for &key in theirs {
            let what = format!("{} {}", key.domain, key.selector);
            let age = now.saturating_sub(key.since);
            match key.phase {
                Phase::Active => {
                    let activated = key.activated_at.unwrap_or(key.since);
                    if now.saturating_sub(activated) > domain.policy.rotate_every.secs() + margin {
                        findings.push((
                            Health::Warning,
                            format!(
                                "{what} is overdue for rotation (active since {})",
                                rfc3339(activated)
                            ),
                        ));
                    }
                }
                Phase::Generated | Phase::Propagated if age > margin => findings.push((
                    Health::Warning,
                    format!("{what} has been {} since {}", key.phase, rfc3339(key.since)),
                )),
                Phase::Retiring if age > domain.policy.grace.secs() + margin => findings.push((
                    Health::Warning,
                    format!("{what} has been retiring since {}", rfc3339(key.since)),
                )),
                _ => {}
            }
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.0));
    let worst = findings.first().map_or(Health::Ok, |f| f.0);
    (worst, findings.into_iter().map(|f| f.1).collect())
}

/// What `status` finds about the passes themselves, from the last one recorded: passes that
/// stopped (a hung timer, a lock never released, a crash loop) are otherwise invisible, since
/// every key still looks fine. `warn_after` and `critical_after` are the limits without a pass.
pub fn passes(
    last: Option<PassRecord>,
    now: u64,
    warn_after: u64,
    critical_after: u64,
) -> Option<(Health, String)> {
    let last = last?;
    if now + 60 < last.at {
        return Some((
            Health::Warning,
            format!(
                "the clock ({}) is behind the last pass ({}): check NTP; grace windows are held meanwhile",
                rfc3339(now),
                rfc3339(last.at)
            ),
        ));
    }
    let since = now.saturating_sub(last.at);
    if since > critical_after {
        return Some((
            Health::Critical,
            format!(
                "no pass since {}: is the timer or daemon running?",
                rfc3339(last.at)
            ),
        ));
    }
    if since > warn_after {
        return Some((
            Health::Warning,
            format!(
                "no pass since {}: is the timer or daemon running?",
                rfc3339(last.at)
            ),
        ));
    }
    let success = last.last_success.unwrap_or(0);
    (now.saturating_sub(success) > critical_after).then(|| {
        let when = last
            .last_success
            .map_or_else(|| "ever".to_string(), |at| format!("since {}", rfc3339(at)));
        (
            Health::Warning,
            format!("passes run, but none succeeded for every domain {when}"),
        )
    })
}

/// Each signer's state for the key, short: `mx1:signing,rspamd:failed` (the error is in the
/// row's error).
fn signers(row: &KeyStatus) -> String {
    if row.signers.is_empty() {
        return "-".into();
    }
    row.signers
        .iter()
        .map(|(name, state)| {
            let word = state.split([',', ':']).next().unwrap_or_default();
            // A signer whose last probe with this key passed has proven it signs with it.
            let word = match row.probes.get(name) {
                Some(probe) if word == "signing" && probe.ok => "proven",
                Some(probe) if word == "signing" && !probe.ok => "probe-failed",
                _ => word,
            };
            format!("{name}:{word}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Renders rows as an aligned table.
pub fn table(rows: &[KeyStatus]) -> String {
    let header = [
        "DOMAIN",
        "SELECTOR",
        "ALGORITHM",
        "PHASE",
        "SINCE",
        "NEXT",
        "SIGNERS",
        "WAITING FOR",
    ];
    let dash = || "-".to_string();
    let mut lines: Vec<[String; 8]> = vec![header.map(String::from)];
    for row in rows {
        let mut waiting = row.waiting_for.clone().unwrap_or_else(dash);
        if let Some(dmarc) = row.dmarc.filter(|d| d.messages() > 0) {
            waiting = format!(
                "{waiting} [DMARC: {:.1}% of {} passed]",
                100.0 - dmarc.fail_rate() * 100.0,
                dmarc.messages()
            );
        }
        if let Some(error) = &row.error {
            let kind = row.error_kind.map(|k| format!(", {k}")).unwrap_or_default();
            waiting = format!("{waiting} (error{kind}: {error})");
        }
        let mut selector = row.selector.clone().unwrap_or_else(dash);
        if let (Some(name), Some(record)) = (&row.selector, &row.record_name)
            && !record.starts_with(&format!("{name}._domainkey."))
        {
            selector = format!("{selector} (at {record})");
        }
        lines.push([
            row.domain.clone(),
            selector,
            row.algorithm.map_or_else(dash, |a| a.to_string()),
            row.phase.clone().unwrap_or_else(dash),
            row.since.clone().unwrap_or_else(dash),
            row.next_at.clone().unwrap_or_else(dash),
            signers(row),
            waiting,
        ]);
    }
    let last = header.len() - 1;
    let widths: Vec<usize> = (0..last)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            if i < last {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// `rotor plan` as text: each step taken now, with its DNS changes, the signers it switches and
/// the steps that follow; "nothing to do now" when there is none.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let step = |step: &Step| match step {
        Step::Act { action } => action.to_string(),
        Step::Wait {
            until: Some(until),
            gate,
        } => format!("wait: {gate} (until {})", rfc3339(*until)),
        Step::Wait { until: None, gate } => format!("wait: {gate}"),
        Step::Done => "done".to_string(),
    };
    let then = |steps: &[Step]| {
        let rest: Vec<String> = steps.iter().skip(1).map(step).collect();
        if rest.is_empty() {
            String::new()
        } else {
            format!("\n    then: {}", rest.join(" → "))
        }
    };
    for domain in &plan.domains {
        for rotation in &domain.rotations {
            if rotation.step.action().is_some() {
                let chain: Vec<String> = rotation.then.iter().map(step).collect();
                out.push_str(&format!(
                    "{} -: start a rotation: new {} key, then {}\n",
                    domain.domain,
                    rotation.algorithm,
                    chain.join(" → ")
                ));
            }
        }
        for key in &domain.keys {
            let Some(action) = key.step.action() else {
                continue;
            };
            out.push_str(&format!(
                "{} {}: {action} ({}, {})",
                domain.domain, key.selector, key.algorithm, key.phase
            ));
            for change in &key.dns {
                match change {
                    DnsChange::Add { name, value, ttl } => {
                        out.push_str(&format!("\n    add TXT {name} (ttl {ttl}) {value:.60}"));
                    }
                    DnsChange::Delete { name, value } => {
                        out.push_str(&format!("\n    delete TXT {name} {value:.60}"));
                    }
                }
            }
            if !key.signers.is_empty() {
                out.push_str(&format!("\n    signers: {}", key.signers.join(", ")));
            }
            out.push_str(&then(&key.then));
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("nothing to do now\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const DAY: u64 = 86400;

    fn config() -> Config {
        let yaml = "state_dir: /s\nkey_dir: /k\ndefaults:\n  rotate_every: 30d\n  grace: 7d\n  propagation: {timeout: 2d}\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: exim, table: /t, key_dir: /kd}\ndomains:\n  - {name: example.com, provider: p, signers: [s]}\n";
        Config::parse(yaml, Path::new("t.yaml")).unwrap()
    }

    fn key(selector: &str, phase: Phase, since: u64) -> KeyRecord {
        KeyRecord {
            phase,
            activated_at: Some(since),
            ..KeyRecord::reserved(
                "example.com",
                selector,
                KeyAlgorithm::Rsa2048,
                "/k/x".into(),
                since,
            )
        }
    }

    fn health(
        domains: &[&DomainConfig],
        keys: &[KeyRecord],
        evidence: &Evidence,
        now: u64,
    ) -> (Health, Vec<String>) {
        let shown = rows(domains, keys, evidence, false, now);
        health_of(&shown, domains, keys, evidence, now)
    }

    #[test]
    fn health_warns_of_overdue_and_stalled_keys_and_fails_on_failed_ones() {
        let config = config();
        let domains: Vec<&DomainConfig> = config.domains.iter().collect();
        let active = key("a", Phase::Active, 0);
        assert_eq!(
            health(
                &domains,
                std::slice::from_ref(&active),
                &Evidence::new(),
                31 * DAY
            )
            .0,
            Health::Ok
        );
        let (health_now, findings) = health(
            &domains,
            std::slice::from_ref(&active),
            &Evidence::new(),
            33 * DAY,
        );
        assert_eq!(health_now, Health::Warning);
        assert!(findings[0].contains("overdue"), "{findings:?}");

        let stuck = key("b", Phase::Propagated, 10 * DAY);
        let (health_now, findings) = health(&domains, &[stuck], &Evidence::new(), 13 * DAY);
        assert_eq!(health_now, Health::Warning);
        assert!(
            findings[0].contains("has been propagated since"),
            "{findings:?}"
        );

        let failed = KeyRecord {
            error: Some("not visible".into()),
            ..key("c", Phase::Failed, DAY)
        };
        let (health_now, findings) = health(&domains, &[active, failed], &Evidence::new(), 2 * DAY);
        assert_eq!((health_now, health_now.code()), (Health::Critical, 2));
        assert_eq!(findings, ["example.com c failed: not visible"]);
    }

    #[test]
    fn the_table_shows_each_signers_state() {
        let config = config();
        let domains: Vec<&DomainConfig> = config.domains.iter().collect();
        let key = KeyRecord {
            error: Some("signer mx2: reload failed".into()),
            signers: [
                ("mx1".to_string(), "signing".to_string()),
                (
                    "mx2".to_string(),
                    "failed, kept its previous keys: reload failed".to_string(),
                ),
            ]
            .into(),
            ..key("a", Phase::Propagated, 0)
        };
        let text = table(&rows(&domains, &[key], &Evidence::new(), false, 60));
        let line = text.lines().nth(1).unwrap();
        assert!(line.contains("  mx1:signing,mx2:failed  "), "{text}");
        assert!(
            line.ends_with("(error: signer mx2: reload failed)"),
            "{text}"
        );
        assert!(
            text.lines().next().unwrap().contains("  SIGNERS  "),
            "{text}"
        );
    }

    #[test]
    fn passes_that_stop_warn_then_go_critical() {
        let pass = |at, last_success| PassRecord {
            at,
            success: last_success == Some(at),
            last_success,
            boot: None,
        };
        let (warn, critical) = (7200, 43200);
        let now = 1_000_000;
        assert_eq!(
            passes(None, now, warn, critical),
            None,
            "never ran: nothing to say"
        );
        assert_eq!(
            passes(Some(pass(now - 900, Some(now - 900))), now, warn, critical),
            None
        );
        let late = passes(
            Some(pass(now - 7201, Some(now - 7201))),
            now,
            warn,
            critical,
        )
        .unwrap();
        assert_eq!(late.0, Health::Warning, "{late:?}");
        assert!(late.1.contains("no pass since"));
        let stopped = passes(
            Some(pass(now - 43201, Some(now - 43201))),
            now,
            warn,
            critical,
        );
        assert_eq!(stopped.unwrap().0, Health::Critical);
        let failing = passes(
            Some(pass(now - 900, Some(now - 50000))),
            now,
            warn,
            critical,
        )
        .unwrap();
        assert_eq!(failing.0, Health::Warning);
        assert!(failing.1.contains("none succeeded"), "{failing:?}");
        let behind = passes(
            Some(pass(now + 3600, Some(now + 3600))),
            now,
            warn,
            critical,
        )
        .unwrap();
        assert!(behind.1.contains("behind the last pass"), "{behind:?}");
    }
}
