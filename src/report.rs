//! `rotor report`: what DMARC aggregate reports said of a domain's DKIM selectors, per selector
//! (rotor's keys with their phase, and any other selector reports saw signing for the domain).

use std::collections::{BTreeMap, BTreeSet};

use rotor_state::{DkimDay, KeyRecord};
use serde::Serialize;

use crate::plan::evidence::totals_since;
use crate::time::rfc3339;

/// One selector's line of `rotor report`.
#[derive(Debug, Serialize)]
pub struct SelectorReport {
    /// The selector.
    pub selector: String,
    /// Its key's phase, when it is one of rotor's keys.
    pub phase: Option<String>,
    /// Messages whose signature passed.
    pub pass: u64,
    /// Messages whose signature failed.
    pub fail: u64,
    /// Messages with another result.
    pub other: u64,
    /// The share that did not pass, in percent.
    pub fail_percent: f64,
    /// The first day reports saw it (RFC 3339).
    pub first_day: String,
    /// The last day reports saw it.
    pub last_day: String,
    /// The organisations that reported it.
    pub reporters: BTreeSet<String>,
    /// Each day's counts.
    pub days: Vec<DkimDay>,
}

/// The lines of `rotor report` for a domain whose reports said `days` and whose keys are `keys`.
pub fn selectors(days: &[DkimDay], keys: &[KeyRecord]) -> Vec<SelectorReport> {
    let totals = totals_since(days, 0);
    let mut by_selector: BTreeMap<&str, Vec<&DkimDay>> = BTreeMap::new();
    for day in days {
        by_selector.entry(&day.selector).or_default().push(day);
    }
    by_selector
        .into_iter()
        .map(|(selector, days)| {
            let total = totals.get(selector).copied().unwrap_or_default();
            let phase = keys
                .iter()
                .filter(|k| k.selector.eq_ignore_ascii_case(selector))
                .max_by_key(|k| k.created_at)
                .map(|k| k.phase.to_string());
            SelectorReport {
                selector: selector.to_string(),
                phase,
                pass: total.pass,
                fail: total.fail,
                other: total.other,
                fail_percent: (total.fail_rate() * 1000.0).round() / 10.0,
                first_day: days
                    .iter()
                    .map(|d| d.day)
                    .min()
                    .map(rfc3339)
                    .unwrap_or_default(),
                last_day: days
                    .iter()
                    .map(|d| d.day)
                    .max()
                    .map(rfc3339)
                    .unwrap_or_default(),
                reporters: days.iter().flat_map(|d| d.orgs.iter().cloned()).collect(),
                days: days.into_iter().cloned().collect(),
            }
        })
        .collect()
}

/// `rotor report` as text.
pub fn text(domain: &str, rows: &[SelectorReport]) -> String {
    if rows.is_empty() {
        return format!(
            "{domain}: no DMARC aggregate report has shown a DKIM signature of this domain yet\n"
        );
    }
    let mut lines = vec![[
        "SELECTOR".to_string(),
        "PHASE".into(),
        "PASS".into(),
        "FAIL".into(),
        "OTHER".into(),
        "FAIL%".into(),
        "FIRST DAY".into(),
        "LAST DAY".into(),
        "REPORTED BY".into(),
    ]];
    for row in rows {
        let day = |d: &str| d.split('T').next().unwrap_or_default().to_string();
        lines.push([
            row.selector.clone(),
            row.phase.clone().unwrap_or_else(|| "(not rotor's)".into()),
            row.pass.to_string(),
            row.fail.to_string(),
            row.other.to_string(),
            format!("{:.1}", row.fail_percent),
            day(&row.first_day),
            day(&row.last_day),
            row.reporters.iter().cloned().collect::<Vec<_>>().join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("{domain}: DKIM results in DMARC aggregate reports\n");
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            match widths.get(i) {
                Some(width) => out.push_str(&format!("{cell:<width$}  ")),
                None => out.push_str(cell),
            }
        }
        out.push('\n');
    }
    out
}
