//! What `rotor status` and `rotor plan` show.

use rotor_state::{KeyRecord, ServerCheck};
use serde::Serialize;

use crate::config::DomainConfig;
use crate::engine::rfc3339;
use crate::lifecycle::{self, Next};

/// One row of `rotor status`: a key, or a domain that has none yet.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    /// The domain.
    pub domain: String,
    /// The key's selector.
    pub selector: Option<String>,
    /// The key's algorithm.
    pub algorithm: Option<String>,
    /// The key's phase.
    pub phase: Option<String>,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// When the next step is due (RFC 3339), if known.
    pub next_at: Option<String>,
    /// What the key waits for, or the step it takes on the next run.
    pub waiting_for: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// The last propagation check, server by server.
    pub servers: Vec<ServerCheck>,
}

impl KeyStatus {
    fn new(domain: &DomainConfig, key: &KeyRecord, now: u64) -> Self {
        let (next_at, waiting_for) = match lifecycle::next(key, &domain.policy, now) {
            Next::Act(action) => (Some(rfc3339(now)), Some(format!("next run: {action}"))),
            Next::Wait { until, reason } => (until.map(rfc3339), Some(reason)),
            Next::Done => (None, None),
        };
        Self {
            domain: key.domain.clone(),
            selector: Some(key.selector.clone()),
            algorithm: Some(key.algorithm.clone()),
            phase: Some(key.phase.to_string()),
            since: Some(rfc3339(key.since)),
            next_at,
            waiting_for,
            error: key.error.clone(),
            servers: key.last_check.as_ref().map(|c| c.servers.clone()).unwrap_or_default(),
        }
    }

    fn without_keys(domain: &DomainConfig) -> Self {
        Self {
            domain: domain.name.to_string(),
            selector: None,
            algorithm: None,
            phase: None,
            since: None,
            next_at: None,
            waiting_for: Some("first rotation on the next run".into()),
            error: None,
            servers: Vec::new(),
        }
    }
}

/// The status rows of `domains`, whose stored keys are `keys`.
pub fn rows(domains: &[&DomainConfig], keys: &[KeyRecord], all: bool, now: u64) -> Vec<KeyStatus> {
    let mut rows = Vec::new();
    for domain in domains {
        let mut theirs: Vec<&KeyRecord> = keys.iter().filter(|k| k.domain == domain.name.as_str()).collect();
        theirs.sort_by_key(|k| (k.created_at, k.selector.clone()));
        let shown: Vec<&&KeyRecord> = theirs.iter().filter(|k| all || !k.phase.is_final()).collect();
        if shown.is_empty() {
            rows.push(KeyStatus::without_keys(domain));
        }
        rows.extend(shown.into_iter().map(|key| KeyStatus::new(domain, key, now)));
    }
    rows
}

/// Renders rows as an aligned table.
pub fn table(rows: &[KeyStatus]) -> String {
    let header = ["DOMAIN", "SELECTOR", "ALGORITHM", "PHASE", "SINCE", "NEXT", "WAITING FOR"];
    let dash = || "-".to_string();
    let mut lines: Vec<[String; 7]> = vec![header.map(String::from)];
    for row in rows {
        let mut waiting = row.waiting_for.clone().unwrap_or_else(dash);
        if let Some(error) = &row.error {
            waiting = format!("{waiting} (error: {error})");
        }
        lines.push([
            row.domain.clone(),
            row.selector.clone().unwrap_or_else(dash),
            row.algorithm.clone().unwrap_or_else(dash),
            row.phase.clone().unwrap_or_else(dash),
            row.since.clone().unwrap_or_else(dash),
            row.next_at.clone().unwrap_or_else(dash),
            waiting,
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            if i < 6 {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}
