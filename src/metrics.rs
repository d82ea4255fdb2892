//! Prometheus metrics in a text file for node_exporter's textfile collector, written atomically
//! after each pass, and the provider wrapper that counts API calls and errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use rotor_providers::{Change, DnsProvider, Listing, ProviderError, TxtValue, Zone, async_trait};
use rotor_state::{KeyRecord, Phase};

use rotor_common::ErrorKind;

use crate::config::Config;
use crate::engine::Ingested;
use crate::fsutil;
use crate::plan::evidence::{Evidence, failing, totals_since};

/// Calls and errors of one provider during a pass.
#[derive(Debug, Default)]
pub struct CallCount {
    calls: AtomicU64,
    errors: AtomicU64,
}

impl CallCount {
    fn record<T>(&self, result: &Result<T, ProviderError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A provider whose calls are counted.
pub struct Metered {
    inner: Box<dyn DnsProvider>,
    count: Arc<CallCount>,
}

impl Metered {
    /// Counts `inner`'s calls into `count`.
    pub fn new(inner: Box<dyn DnsProvider>, count: Arc<CallCount>) -> Self {
        Self { inner, count }
    }
}

#[async_trait]
impl DnsProvider for Metered {
    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError> {
        let result = self.inner.find_zone(fqdn).await;
        self.count.record(&result);
        result
    }

    async fn list_txt(&self, zone: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError> {
        let result = self.inner.list_txt(zone, fqdn).await;
        self.count.record(&result);
        result
    }

    async fn list_txt_many(
        &self,
        zone: &Zone,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<TxtValue>>, ProviderError> {
        let result = self.inner.list_txt_many(zone, names).await;
        self.count.record(&result);
        result
    }

    async fn apply(&self, zone: &Zone, changes: &[Change]) -> Result<(), ProviderError> {
        let result = self.inner.apply(zone, changes).await;
        self.count.record(&result);
        result
    }

    async fn apply_if_unchanged(
        &self,
        zone: &Zone,
        changes: &[Change],
        read: &Listing,
    ) -> Result<(), ProviderError> {
        let result = self.inner.apply_if_unchanged(zone, changes, read).await;
        self.count.record(&result);
        result
    }

    async fn check(&self, zone: &Zone) -> Result<(), ProviderError> {
        let result = self.inner.check(zone).await;
        self.count.record(&result);
        result
    }
}

/// What a pass measured, besides the store.
pub struct PassMetrics<'a> {
    /// When it ended (Unix seconds).
    pub now: u64,
    /// How long it took.
    pub seconds: f64,
    /// Whether every domain went through without error.
    pub success: bool,
    /// The domains that failed, by kind of failure.
    pub failures: BTreeMap<ErrorKind, usize>,
    /// Provider calls, by provider name.
    pub calls: &'a BTreeMap<String, Arc<CallCount>>,
    /// What DMARC reports said, by domain.
    pub evidence: &'a Evidence,
    /// The reports this pass read.
    pub reports: Ingested,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text for `keys` after a pass.
pub fn render(config: &Config, keys: &[KeyRecord], pass: &PassMetrics) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let configured = |key: &&KeyRecord| config.domain(&key.domain).is_some();
    let mut per_phase = Vec::new();
    for domain in &config.domains {
        for phase in Phase::ALL {
            let count = keys
                .iter()
                .filter(|k| k.domain == domain.name.as_str() && k.phase == phase)
                .count();
            per_phase.push((
                format!(
                    "{{domain=\"{}\",phase=\"{phase}\"}}",
                    escape(domain.name.as_str())
                ),
                count.to_string(),
            ));
        }
    }
    family(
        "rotor_keys",
        "Keys by domain and phase.",
        "gauge",
        per_phase,
    );
    family(
        "rotor_active_key_age_seconds",
        "Seconds since the active key of each domain and algorithm was activated.",
        "gauge",
        keys.iter()
            .filter(configured)
            .filter(|k| k.phase == Phase::Active)
            .map(|k| {
                (
                    format!(
                        "{{domain=\"{}\",algorithm=\"{}\",selector=\"{}\"}}",
                        escape(&k.domain),
                        escape(&k.algorithm.to_string()),
                        escape(&k.selector)
                    ),
                    pass.now
                        .saturating_sub(k.activated_at.unwrap_or(k.since))
                        .to_string(),
                )
            })
            .collect(),
    );
    family(
        "rotor_key_phase_seconds",
        "Seconds each key not yet retired has been in its current phase.",
        "gauge",
        keys.iter()
            .filter(configured)
            .filter(|k| !k.phase.is_final())
            .map(|k| {
                (
                    format!(
                        "{{domain=\"{}\",selector=\"{}\",phase=\"{}\"}}",
                        escape(&k.domain),
                        escape(&k.selector),
                        k.phase
                    ),
                    pass.now.saturating_sub(k.since).to_string(),
                )
            })
            .collect(),
    );
    family(
        "rotor_signer_probe_ok",
        "1 if the signer's last probe with the active key was signed with it and verified, 0 if not.",
        "gauge",
        keys.iter()
            .filter(configured)
            .filter(|k| k.phase == Phase::Active)
            .flat_map(|k| {
                k.probes.iter().map(move |(signer, probe)| {
                    (
                        format!(
                            "{{domain=\"{}\",selector=\"{}\",signer=\"{}\"}}",
                            escape(&k.domain),
                            escape(&k.selector),
                            escape(signer)
                        ),
                        u8::from(probe.ok).to_string(),
                    )
                })
            })
            .collect(),
    );
    let mut dkim = Vec::new();
    for (domain, days) in pass.evidence {
        for (selector, totals) in totals_since(days, 0) {
            for (result, count) in [
                ("pass", totals.pass),
                ("fail", totals.fail),
                ("other", totals.other),
            ] {
                dkim.push((
                    format!(
                        "{{domain=\"{}\",selector=\"{}\",result=\"{result}\"}}",
                        escape(domain),
                        escape(&selector)
                    ),
                    count.to_string(),
                ));
            }
        }
    }
    family(
        "rotor_dmarc_dkim_messages",
        "Messages DMARC aggregate reports saw signed with each selector, by DKIM result.",
        "gauge",
        dkim,
    );
    family(
        "rotor_dmarc_failing",
        "1 if the active key's selector fails in DMARC reports above monitor.max_fail_rate.",
        "gauge",
        config
            .domains
            .iter()
            .flat_map(|domain| {
                let days = crate::plan::evidence::days_of(pass.evidence, domain.name.as_str());
                keys.iter()
                    .filter(|k| k.domain == domain.name.as_str() && k.phase == Phase::Active)
                    .filter(|_| domain.policy.monitor.is_some())
                    .map(move |k| {
                        let failing = failing(k, &domain.policy, days, pass.now).is_some();
                        (
                            format!(
                                "{{domain=\"{}\",selector=\"{}\"}}",
                                escape(&k.domain),
                                escape(&k.selector)
                            ),
                            u8::from(failing).to_string(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    family(
        "rotor_last_pass_reports",
        "DMARC aggregate reports the last pass read, by outcome.",
        "gauge",
        vec![
            (
                "{outcome=\"counted\"}".to_string(),
                pass.reports.counted.to_string(),
            ),
            (
                "{outcome=\"duplicate\"}".to_string(),
                pass.reports.duplicates.to_string(),
            ),
            (
                "{outcome=\"refused\"}".to_string(),
                pass.reports.refused.to_string(),
            ),
        ],
    );
    family(
        "rotor_last_pass_success",
        "1 if the last pass went through without error.",
        "gauge",
        vec![(String::new(), u8::from(pass.success).to_string())],
    );
    family(
        "rotor_last_pass_failures",
        "Domains whose step failed in the last pass, by kind: transient (retried as it is), needs-operator, conflict.",
        "gauge",
        [
            ErrorKind::Transient,
            ErrorKind::NeedsOperator,
            ErrorKind::Conflict,
        ]
        .into_iter()
        .map(|kind| {
            let count = pass.failures.get(&kind).copied().unwrap_or(0);
            (format!("{{kind=\"{kind}\"}}"), count.to_string())
        })
        .collect(),
    );
    family(
        "rotor_last_pass_timestamp_seconds",
        "When the last pass ended.",
        "gauge",
        vec![(String::new(), pass.now.to_string())],
    );
    family(
        "rotor_last_pass_duration_seconds",
        "How long the last pass took.",
        "gauge",
        vec![(String::new(), format!("{:.3}", pass.seconds))],
    );
    let per_provider = |errors: bool| {
        pass.calls
            .iter()
            .map(|(name, count)| {
                let value = if errors { &count.errors } else { &count.calls };
                (
                    format!("{{provider=\"{}\"}}", escape(name)),
                    value.load(Ordering::Relaxed).to_string(),
                )
            })
            .collect()
    };
    family(
        "rotor_last_pass_provider_calls",
        "DNS provider API operations in the last pass.",
        "gauge",
        per_provider(false),
    );
    family(
        "rotor_last_pass_provider_errors",
        "DNS provider API operations that failed in the last pass.",
        "gauge",
        per_provider(true),
    );
    out
}

/// Writes the metrics file atomically (world-readable: it holds no secret).
pub fn write(path: &Path, text: &str) -> Result<()> {
    Ok(fsutil::write_atomic(path, text.as_bytes(), 0o644)?)
}
