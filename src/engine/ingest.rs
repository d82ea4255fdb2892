//! Reading DMARC aggregate reports at the start of a pass: every source's new reports parsed,
//! each counted once (by reporting organisation and report id) per selector and day, then
//! marked processed at its source. A report that cannot be read is marked processed too (it
//! stays where the source keeps processed ones) and warned about; one over the size limit is
//! left where it is, and warned about on every pass. A source that cannot be reached warns;
//! no domain fails for it.

use std::collections::BTreeSet;

use rotor_reports::parse::{self, Summary};
use rotor_reports::{MAX_REPORT, Source};
use rotor_state::{DkimDay, SeenReport};

use rotor_state::Phase;

use super::Engine;
use crate::config::DomainConfig;
use crate::plan::evidence;

/// What one pass read, for its log line and the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Reports counted.
    pub counted: u64,
    /// Reports seen before (same organisation and id), not counted again.
    pub duplicates: u64,
    /// Reports refused (malformed, too large, unreadable).
    pub refused: u64,
}

const DAY: u64 = 86_400;

/// How the history event of a failing selector starts.
const ALERT: &str = "alert:";

/// The days `summary` adds, per selector of its signing domains.
fn days_of(summary: &Summary) -> Vec<DkimDay> {
    let day = summary.begin - summary.begin % DAY;
    summary
        .selectors
        .iter()
        .map(|count| DkimDay {
            domain: count.domain.clone(),
            selector: count.selector.clone(),
            day,
            pass: count.pass,
            fail: count.fail,
            other: count.other,
            orgs: BTreeSet::from([summary.org.clone()]),
        })
        .collect()
}

impl Engine<'_> {
    /// Raises, once per key, the alert of an active key whose selector fails in reports above
    /// `monitor.max_fail_rate` (an event in its history, so a notification); `status` warns
    /// of it on every run while it lasts.
    pub(super) fn alert(&self, domain: &DomainConfig) -> anyhow::Result<()> {
        if domain.policy.monitor.is_none() {
            return Ok(());
        }
        let keys = self.store.domain_keys(domain.name.as_str())?;
        let days = self.days(domain);
        let history = self.store.history(domain.name.as_str())?;
        let now = self.clock.now();
        let mut events = Vec::new();
        for key in keys.iter().filter(|k| k.phase == Phase::Active) {
            let Some(alert) = evidence::failing(key, &domain.policy, &days, now) else {
                continue;
            };
            let raised = history
                .iter()
                .any(|e| e.selector == key.selector && e.detail.starts_with(ALERT));
            if !raised {
                tracing::warn!("{} {}: {alert}", key.domain, key.selector);
                events.push(self.event(key, format!("{ALERT} {alert}")));
            }
        }
        if !events.is_empty() {
            self.store.commit(&[], &events)?;
        }
        Ok(())
    }

    /// Reads every report source once.
    pub(super) async fn ingest(&self) -> Ingested {
        let mut total = Ingested::default();
        for source in &self.parts.reports {
            match self.ingest_one(source.as_ref()).await {
                Ok(read) => {
                    total.counted += read.counted;
                    total.duplicates += read.duplicates;
                    total.refused += read.refused;
                }
                Err(err) => self.warn(format!("reports: {}: {err}", source.describe())),
            }
        }
        if total != Ingested::default() {
            tracing::info!(
                "DMARC reports: {} counted, {} seen before, {} refused",
                total.counted,
                total.duplicates,
                total.refused
            );
        }
        total
    }

    async fn ingest_one(&self, source: &dyn Source) -> anyhow::Result<Ingested> {
        let fetched = source.fetch(MAX_REPORT).await?;
        let mut read = Ingested::default();
        let mut done = Vec::new();
        let name = source.describe();
        for item in fetched {
            let report = match item {
                Ok(report) => report,
                Err(skipped) => {
                    read.refused += 1;
                    self.warn(format!(
                        "reports: {name}: {} left unread: {}",
                        skipped.id, skipped.reason
                    ));
                    continue;
                }
            };
            match parse::parse(&report.bytes, MAX_REPORT) {
                Ok(summary) => {
                    let seen = SeenReport {
                        org: summary.org.clone(),
                        report_id: summary.report_id.clone(),
                        at: self.clock.now(),
                        source: name.clone(),
                    };
                    if self.store.record_report(&seen, &days_of(&summary))? {
                        read.counted += 1;
                    } else {
                        read.duplicates += 1;
                        tracing::info!(
                            "reports: {name}: {}: report {} of {} was counted before",
                            report.id,
                            summary.report_id,
                            summary.org
                        );
                    }
                }
                Err(reason) => {
                    read.refused += 1;
                    self.warn(format!("reports: {name}: {} refused: {reason}", report.id));
                }
            }
            done.push(report.id);
        }
        if !done.is_empty() {
            source.done(&done).await?;
        }
        Ok(read)
    }
}
