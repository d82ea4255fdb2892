//! Key generation: every key waiting for its key pair, generated in parallel with the intents
//! and the results each recorded in one commit.

use anyhow::{Context, Result};
use futures_util::StreamExt;
use rotor_state::{Action, KeyRecord};

use super::{Engine, failure};
use crate::config::DomainConfig;
use crate::keys::PrivateKey;
use crate::{crashpoint, fsutil};

impl Engine<'_> {
    /// Generates every key of `domains` that waits for its key pair, one per core at a time. The
    /// intents are recorded in one commit before any key is written, and the results in one
    /// commit after (two store flushes per pass, not two per key).
    pub(super) async fn generate_all(
        &self,
        domains: &[&DomainConfig],
    ) -> Vec<(String, anyhow::Error)> {
        let mut jobs = Vec::new();
        let mut failures = Vec::new();
        for &domain in domains {
            match self.store.domain_keys(domain.name.as_str()) {
                Ok(keys) => {
                    let plan = self.plan_of(domain, &keys);
                    jobs.extend(
                        keys.iter()
                            .filter(|key| {
                                plan.taking(Action::GenerateKey)
                                    .any(|k| k.selector == key.selector)
                            })
                            .map(|key| (domain, key.clone())),
                    );
                }
                Err(err) => failures.push((domain.name.to_string(), err.into())),
            }
        }
        if jobs.is_empty() {
            return failures;
        }
        let intended: Vec<KeyRecord> = jobs
            .iter()
            .map(|(_, key)| KeyRecord {
                intent: Some(Action::GenerateKey),
                ..key.clone()
            })
            .collect();
        let changes: Vec<_> = jobs
            .iter()
            .map(|(_, key)| Some(key))
            .zip(&intended)
            .collect();
        if let Err(err) = self.store.commit(&changes, &[]) {
            let err = &anyhow::Error::from(err);
            failures.extend(
                jobs.iter()
                    .map(|(d, _)| (d.name.to_string(), failure::copy(err))),
            );
            return failures;
        }
        crashpoint::hit(Action::GenerateKey.id(), "started");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let bar = &self.progress.stage("keys generated", jobs.len());
        let results: Vec<_> =
            futures_util::stream::iter(jobs.iter().map(|(d, _)| *d).zip(intended))
                .map(|(domain, key)| async move {
                    let result = self.generate(&key).await;
                    bar.inc(1);
                    (domain, key, result)
                })
                // One more than the cores: none idles while a finished key's file is flushed.
                .buffer_unordered(cores + 1)
                .collect()
                .await;
        bar.finish();
        let mut done = Vec::new();
        let mut events = Vec::new();
        for (domain, key, result) in results {
            match result {
                Ok(record) => {
                    let generated = KeyRecord {
                        record: Some(record),
                        intent: None,
                        error: None,
                        ..key.clone()
                    };
                    let detail = format!(
                        "{} key written to {}",
                        key.algorithm,
                        key.key_file.display()
                    );
                    events.push(self.event(&generated, detail));
                    done.push((key, generated));
                }
                Err(err) => {
                    let err = err.context(format!(
                        "{} {}: {}",
                        domain.name,
                        key.selector,
                        Action::GenerateKey
                    ));
                    if let Err(store) = self.record_error(&key, &err) {
                        tracing::error!("{}: cannot record the error: {store:#}", domain.name);
                    }
                    failures.push((domain.name.to_string(), err));
                }
            }
        }
        let changes: Vec<_> = done
            .iter()
            .map(|(before, after)| (Some(before), after))
            .collect();
        match self.store.commit(&changes, &events) {
            Ok(()) => crashpoint::hit(Action::GenerateKey.id(), "applied"),
            Err(err) => {
                let err = &anyhow::Error::from(err);
                failures.extend(
                    done.iter()
                        .map(|(k, _)| (k.domain.clone(), failure::copy(err))),
                );
            }
        }
        failures
    }

    pub(super) async fn generate(&self, key: &KeyRecord) -> Result<String> {
        let algorithm = key.algorithm;
        let dir = key
            .key_file
            .parent()
            .context("a key file has a directory")?;
        fsutil::ensure_own_private_dir(&self.config.key_dir)?;
        fsutil::ensure_own_private_dir(dir)?;
        // Always a fresh key: a file already at this path (from a run that died before it
        // recorded the key, or planted there) is never trusted; the key is not published yet,
        // so replacing it is safe either way. Written on the generating thread too: the
        // file's and its folder's fsyncs would otherwise hold up the pass's one thread while
        // the other generators finish and wait.
        let path = key.key_file.clone();
        let write = move || -> Result<String> {
            let private = PrivateKey::generate(algorithm)?;
            fsutil::write_atomic(&path, private.pem().as_bytes(), 0o600)?;
            crashpoint::hit(Action::GenerateKey.id(), "written");
            Ok(private.record()?.to_string())
        };
        tokio::task::spawn_blocking(write).await?
    }
}
