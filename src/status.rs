//! What `rotor status` and `rotor plan` show.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use rotor_common::{ErrorKind, workers};
use rotor_state::{DkimDay, KeyAlgorithm, KeyRecord, PassRecord, Phase, ProbeResult, ServerCheck};
use serde::Serialize;

use crate::config::DomainConfig;
use crate::plan::evidence::{Evidence, Totals, days_of, totals_since};
use crate::plan::{ByDomain, DnsChange, DomainPlan, Gate, Plan, Step, When};
use crate::time::rfc3339;

/// One row of `rotor status`: a key, or a domain that has none yet. It borrows from the key
/// record and the config it shows.
#[derive(Debug, Serialize)]
pub struct KeyStatus<'a> {
    /// The domain.
    pub domain: &'a str,
    /// The key's selector.
    pub selector: Option<&'a str>,
    /// Where its record lives: the selector's name, or the end of its alias chain.
    pub record_name: Option<String>,
    /// The key's algorithm.
    pub algorithm: Option<KeyAlgorithm>,
    /// The key's phase.
    pub phase: Option<Phase>,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// When the next step is due (RFC 3339), if known.
    pub next_at: Option<String>,
    /// What the key waits for, or the step it takes on the next run.
    pub waiting_for: Option<Cow<'static, str>>,
    /// The gate that holds it, if one does.
    pub gate: Option<Gate>,
    /// The last error.
    pub error: Option<&'a str>,
    /// Its kind: `transient` (retried as it is), `needs-operator`, `conflict`.
    pub error_kind: Option<ErrorKind>,
    /// When the last propagation check ran (RFC 3339).
    pub checked_at: Option<String>,
    /// The last propagation check, server by server.
    pub servers: &'a [ServerCheck],
    /// Each signer's state after the last switch concerning this key.
    pub signers: &'a BTreeMap<String, String>,
    /// Each signer's last probe with this key: whether it signed a probe message validly.
    pub probes: &'a BTreeMap<String, ProbeResult>,
    /// What DMARC aggregate reports said of its selector (active and retiring keys).
    pub dmarc: Option<Totals>,
}

/// The signers and probes of a row without a key.
static NONE_SIGNING: BTreeMap<String, String> = BTreeMap::new();
static NONE_PROBED: BTreeMap<String, ProbeResult> = BTreeMap::new();

impl<'a> KeyStatus<'a> {
    /// The row of `key` as it is, without its next step.
    fn of(key: &'a KeyRecord) -> Self {
        Self {
            domain: &key.domain,
            selector: Some(&key.selector),
            record_name: Some(key.record_name()),
            algorithm: Some(key.algorithm),
            phase: Some(key.phase),
            since: Some(rfc3339(key.since)),
            next_at: None,
            waiting_for: None,
            gate: None,
            error: key.error.as_deref(),
            error_kind: key.error.as_ref().and(key.error_kind),
            checked_at: key.last_check.as_ref().map(|c| rfc3339(c.at)),
            servers: key.last_check.as_ref().map_or(&[], |c| &c.servers),
            signers: &key.signers,
            probes: &key.probes,
            dmarc: None,
        }
    }

    /// The row of `key`, whose domain's plan is `plan`: its step, or what holds it. A failed
    /// key shows its domain's next rotation of its type (the retry).
    fn new(key: &'a KeyRecord, plan: &DomainPlan, days: &[DkimDay], now: u64) -> Self {
        let step = match key.phase {
            Phase::Failed => plan
                .rotations
                .iter()
                .find(|r| r.algorithm.dkim_k() == key.algorithm.dkim_k())
                .map(|r| &r.step),
            _ => plan
                .keys
                .iter()
                .find(|k| k.selector == key.selector)
                .map(|k| &k.step),
        };
        let (next_at, waiting_for, gate) = match step {
            Some(Step::Act { action }) if key.phase == Phase::Failed => (
                Some(rfc3339(now)),
                Some(format!("next run: retry the rotation ({action})").into()),
                None,
            ),
            Some(Step::Act { action }) => (
                Some(rfc3339(now)),
                Some(format!("next run: {action}").into()),
                None,
            ),
            Some(Step::Wait { until, gate }) => (
                until.map(rfc3339),
                Some(gate.to_string().into()),
                Some(gate.clone()),
            ),
            Some(Step::Done) | None => (None, None, None),
        };
        Self {
            next_at,
            waiting_for,
            gate,
            dmarc: matches!(key.phase, Phase::Active | Phase::Retiring)
                .then(|| totals_since(days, 0).remove(&key.selector))
                .flatten(),
            ..Self::of(key)
        }
    }

    fn without_keys(domain: &'a DomainConfig) -> Self {
        Self {
            domain: domain.name.as_str(),
            selector: None,
            record_name: None,
            algorithm: None,
            phase: None,
            since: None,
            next_at: None,
            waiting_for: Some(Cow::Borrowed("first rotation on the next run")),
            gate: None,
            error: None,
            error_kind: None,
            checked_at: None,
            servers: &[],
            signers: &NONE_SIGNING,
            probes: &NONE_PROBED,
            dmarc: None,
        }
    }
}

/// Domains per thread below which [`rows`] stays on one thread.
const ROWS_PER_THREAD: usize = 4096;

/// The status rows of `domains`, whose stored keys are `keys`: each domain's keys oldest
/// first; retired keys only with `all`. Many domains are shared among the cores.
pub fn rows<'a>(
    domains: &[&'a DomainConfig],
    keys: &'a ByDomain<'_>,
    evidence: &Evidence,
    all: bool,
    now: u64,
) -> Vec<KeyStatus<'a>> {
    let threads = workers::threads(0)
        .min(domains.len() / ROWS_PER_THREAD)
        .max(1);
    // Never a chunk of none (a config without domains has no rows).
    let size = domains.len().div_ceil(threads).max(1);
    let parts: Vec<&[&DomainConfig]> = domains.chunks(size).collect();
    workers::map(&parts, threads, |part| {
        rows_of(part, keys, evidence, all, now)
    })
    .into_iter()
    .flatten()
    .collect()
}

/// [`rows`] on this thread.
fn rows_of<'a>(
    domains: &[&'a DomainConfig],
    keys: &'a ByDomain<'_>,
    evidence: &Evidence,
    all: bool,
    now: u64,
) -> Vec<KeyStatus<'a>> {
    let when = When::at(now);
    let mut rows = Vec::with_capacity(domains.len());
    for &domain in domains {
        let theirs = keys.of(domain.name.as_str());
        // Retired keys are history; a failed key stays in view until a newer key of its
        // algorithm exists.
        let newer = |k: &KeyRecord| {
            theirs
                .iter()
                .any(|o| o.algorithm == k.algorithm && o.created_at > k.created_at)
        };
        let mut shown: Vec<&KeyRecord> = theirs
            .iter()
            .filter(|k| all || !k.phase.is_final() || (k.phase == Phase::Failed && !newer(k)))
            .collect();
        if shown.is_empty() {
            rows.push(KeyStatus::without_keys(domain));
            continue;
        }
        shown.sort_by(|a, b| (a.created_at, &a.selector).cmp(&(b.created_at, &b.selector)));
        let days = days_of(evidence, domain.name.as_str());
        let plan = DomainPlan::compute(domain, theirs, days, when, false);
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

/// The stored domains that are not `known` and have keys not yet retired, each with its keys:
/// rotor does nothing more with them, so they are shown rather than forgotten.
pub fn orphaned<'k>(
    known: &[DomainConfig],
    keys: &'k ByDomain<'_>,
) -> Vec<(&'k str, &'k [KeyRecord])> {
    let known: HashSet<&str> = known.iter().map(|d| d.name.as_str()).collect();
    keys.domains()
        .filter_map(|theirs| Some((theirs.first()?.domain.as_str(), theirs)))
        .filter(|(domain, theirs)| {
            !known.contains(domain) && theirs.iter().any(|key| !key.phase.is_final())
        })
        .collect()
}

/// Rows for the keys, not yet retired, of the [`orphaned`] domains.
pub fn orphans<'k>(orphaned: &[(&'k str, &'k [KeyRecord])]) -> Vec<KeyStatus<'k>> {
    orphaned
        .iter()
        .flat_map(|(_, theirs)| theirs.iter())
        .filter(|key| !key.phase.is_final())
        .map(|key| KeyStatus {
            waiting_for: Some(Cow::Borrowed(ORPHAN)),
            servers: &[],
            ..KeyStatus::of(key)
        })
        .collect()
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
    keys: &ByDomain<'_>,
    evidence: &Evidence,
    now: u64,
) -> (Health, Vec<String>) {
    let mut findings: Vec<(Health, String)> = Vec::new();
    for row in shown {
        let (Some(selector), Some(phase)) = (row.selector, row.phase) else {
            continue;
        };
        let what = || format!("{} {selector}", row.domain);
        if phase == Phase::Failed {
            let error = row.error.unwrap_or("failed");
            findings.push((Health::Critical, format!("{} failed: {error}", what())));
        } else if let Some(error) = row.error {
            let kind = row.error_kind.map(|k| format!(", {k}")).unwrap_or_default();
            findings.push((
                Health::Warning,
                format!("{} ({phase}{kind}): {error}", what()),
            ));
        }
        if phase == Phase::Active {
            for (signer, probe) in row.probes.iter().filter(|(_, p)| !p.ok) {
                findings.push((
                    Health::Warning,
                    format!(
                        "{}: signer {signer}'s probe failed at {}: {}",
                        what(),
                        rfc3339(probe.at),
                        probe.detail
                    ),
                ));
            }
        }
    }
    for &domain in domains {
        let days = days_of(evidence, domain.name.as_str());
        let theirs = keys.of(domain.name.as_str());
        let policy = &domain.policy;
        let margin = policy.propagation.timeout.secs();
        for key in theirs {
            let what = || format!("{} {}", key.domain, key.selector);
            if let Some(alert) = crate::plan::evidence::failing(key, policy, days, now) {
                findings.push((Health::Warning, format!("{}: {alert}", what())));
            }
            let age = now.saturating_sub(key.since);
            match key.phase {
                Phase::Active => {
                    let activated = key.activated_at.unwrap_or(key.since);
                    if now.saturating_sub(activated) > policy.rotate_every.secs() + margin {
                        findings.push((
                            Health::Warning,
                            format!(
                                "{} is overdue for rotation (active since {})",
                                what(),
                                rfc3339(activated)
                            ),
                        ));
                    }
                }
                Phase::Generated | Phase::Propagated if age > margin => findings.push((
                    Health::Warning,
                    format!(
                        "{} has been {} since {}",
                        what(),
                        key.phase,
                        rfc3339(key.since)
                    ),
                )),
                Phase::Retiring if age > policy.grace.secs() + margin => findings.push((
                    Health::Warning,
                    format!("{} has been retiring since {}", what(), rfc3339(key.since)),
                )),
                _ => {}
            }
        }
    }
    // Stable: within a level, findings keep their order.
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
    let mut out = String::new();
    for (name, state) in row.signers {
        let word = state.split([',', ':']).next().unwrap_or_default();
        // A signer whose last probe with this key passed has proven it signs with it.
        let word = match row.probes.get(name) {
            Some(probe) if word == "signing" && probe.ok => "proven",
            Some(probe) if word == "signing" && !probe.ok => "probe-failed",
            _ => word,
        };
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push(':');
        out.push_str(word);
    }
    out
}

/// Writes rows to `out` as an aligned table.
pub fn table(rows: &[KeyStatus], out: &mut impl Write) -> io::Result<()> {
    const HEADER: [&str; 8] = [
        "DOMAIN",
        "SELECTOR",
        "ALGORITHM",
        "PHASE",
        "SINCE",
        "NEXT",
        "SIGNERS",
        "WAITING FOR",
    ];
    fn cells<'r>(row: &'r KeyStatus<'_>) -> [Cow<'r, str>; 8] {
        let dash = || Cow::Borrowed("-");
        let mut waiting = row.waiting_for.as_deref().map_or_else(dash, Cow::Borrowed);
        if let Some(dmarc) = row.dmarc.filter(|d| d.messages() > 0) {
            waiting = Cow::Owned(format!(
                "{waiting} [DMARC: {:.1}% of {} passed]",
                100.0 - dmarc.fail_rate() * 100.0,
                dmarc.messages()
            ));
        }
        if let Some(error) = row.error {
            let kind = row.error_kind.map(|k| format!(", {k}")).unwrap_or_default();
            waiting = Cow::Owned(format!("{waiting} (error{kind}: {error})"));
        }
        let selector = match (row.selector, &row.record_name) {
            (Some(name), Some(record))
                if !record
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("._domainkey.")) =>
            {
                Cow::Owned(format!("{name} (at {record})"))
            }
            (Some(name), _) => Cow::Borrowed(name),
            (None, _) => dash(),
        };
        [
            Cow::Borrowed(row.domain),
            selector,
            row.algorithm
                .map_or_else(dash, |a| Cow::Owned(a.to_string())),
            row.phase.map_or_else(dash, |p| Cow::Borrowed(p.as_str())),
            row.since.as_deref().map_or_else(dash, Cow::Borrowed),
            row.next_at.as_deref().map_or_else(dash, Cow::Borrowed),
            Cow::Owned(signers(row)),
            waiting,
        ]
    }
    let lines: Vec<[Cow<'_, str>; 8]> = rows.iter().map(cells).collect();
    let last = HEADER.len() - 1;
    let mut widths = HEADER.map(str::len);
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    let header = HEADER.map(Cow::Borrowed);
    // Padded by hand: `{:<width$}` counts characters one by one, a tenth of the table's time
    // at 100,000 rows. Cells are ASCII (domain names, selectors, times, words) except an
    // error's text, in the last column.
    let spaces = vec![b' '; widths.iter().max().copied().unwrap_or(0) + 2];
    for line in std::iter::once(&header).chain(&lines) {
        for (i, cell) in line.iter().enumerate() {
            out.write_all(cell.as_bytes())?;
            if i < last {
                let pad = widths[i] - cell.len() + 2;
                out.write_all(&spaces[..pad])?;
            }
        }
        out.write_all(b"\n")?;
    }
    Ok(())
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

    fn config_yaml() -> String {
        "state_dir: /s\nkey_dir: /k\ndefaults:\n  rotate_every: 30d\n  grace: 7d\n  propagation: {timeout: 2d}\nproviders:\n  p: {type: rfc2136, server: 127.0.0.1}\nsigners:\n  s: {type: exim, table: /t, key_dir: /kd}\ndomains:\n  - {name: example.com, provider: p, signers: [s]}\n".into()
    }

    fn config() -> Config {
        Config::parse(&config_yaml(), Path::new("t.yaml")).unwrap()
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
        let keys = ByDomain::new(keys);
        let shown = rows(domains, &keys, evidence, false, now);
        health_of(&shown, domains, &keys, evidence, now)
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
    fn rows_shared_among_the_cores_come_in_the_domains_order() {
        let count = 2 * ROWS_PER_THREAD + 3;
        let mut yaml = config_yaml().replace(
            "domains:\n  - {name: example.com, provider: p, signers: [s]}\n",
            "domains:\n",
        );
        // Listed out of alphabetical order, and every third domain without keys.
        for i in (0..count).rev() {
            yaml.push_str(&format!(
                "  - {{name: d{i}.example.com, provider: p, signers: [s]}}\n"
            ));
        }
        let config = Config::parse(&yaml, Path::new("t.yaml")).unwrap();
        let domains: Vec<&DomainConfig> = config.domains.iter().collect();
        let keys: Vec<KeyRecord> = (0..count)
            .filter(|i| i % 3 != 0)
            .map(|i| KeyRecord {
                domain: format!("d{i}.example.com"),
                ..key(&format!("s{i}"), Phase::Active, 0)
            })
            .collect();
        let keys = ByDomain::new(&keys);
        let shown = |rows: Vec<KeyStatus>| -> Vec<(String, Option<String>)> {
            rows.iter()
                .map(|r| (r.domain.to_string(), r.selector.map(str::to_string)))
                .collect()
        };
        let shared = shown(rows(&domains, &keys, &Evidence::new(), false, DAY));
        let alone = shown(rows_of(&domains, &keys, &Evidence::new(), false, DAY));
        assert_eq!(shared.len(), count);
        assert_eq!(shared, alone);
        let last = count - 1;
        assert_eq!(
            shared[0],
            (format!("d{last}.example.com"), Some(format!("s{last}")))
        );
        assert_eq!(shared[last], ("d0.example.com".to_string(), None));
    }

    #[test]
    fn no_domains_make_no_rows() {
        let keys = ByDomain::new(&[]);
        assert!(rows(&[], &keys, &Evidence::new(), true, DAY).is_empty());
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
        let keys = [key];
        let mut text = Vec::new();
        table(
            &rows(&domains, &ByDomain::new(&keys), &Evidence::new(), false, 60),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
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
