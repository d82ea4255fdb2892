//! Key generation: every key waiting for its key pair, made on every core, with the intents and
//! the results each recorded in one commit.

use std::path::Path;

use anyhow::{Context, Result};
use rotor_state::{Action, KeyRecord};

use super::{Engine, failure};
use crate::config::DomainConfig;
use crate::keys::PrivateKey;
use crate::{crashpoint, fsutil};
use rotor_common::workers;

impl Engine<'_> {
    /// Generates every key of `domains` that waits for its key pair, on every core. The
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
        let bar = &self.progress.stage("keys generated", jobs.len());
        let made = make_keys(&intended, &self.config.key_dir, || bar.inc(1));
        bar.finish();
        let results = jobs.iter().map(|(d, _)| *d).zip(intended).zip(made);
        let mut done = Vec::new();
        let mut events = Vec::new();
        for ((domain, key), result) in results {
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
        let (key, key_dir) = (key.clone(), self.config.key_dir.clone());
        tokio::task::spawn_blocking(move || {
            fsutil::ensure_own_private_dir(&key_dir)?;
            make_key(&key)
        })
        .await?
    }
}

/// Makes the key pair of each of `keys` and writes its private key to its file (see
/// [`make_key`]), on one thread per core and one more (none idles while a file is flushed),
/// calling `made` after each; returns each key's record or error, in the order of `keys`.
/// Blocks the calling thread meanwhile: a pass does nothing else while its keys are made.
fn make_keys(keys: &[KeyRecord], key_dir: &Path, made: impl Fn() + Sync) -> Vec<Result<String>> {
    if let Err(err) = fsutil::ensure_own_private_dir(key_dir) {
        let err = anyhow::Error::from(err);
        return keys.iter().map(|_| Err(failure::copy(&err))).collect();
    }
    workers::map(keys, workers::threads(1), |key| {
        let made_key = make_key(key);
        made();
        made_key
    })
}

/// Makes `key`'s key pair, writes the private key to the key's file (in a directory of rotor's
/// own) and returns the DNS record.
///
/// Always a fresh key: a file already at this path (from a run that died before it recorded the
/// key, or planted there) is never trusted; the key is not published yet, so replacing it is
/// safe either way.
fn make_key(key: &KeyRecord) -> Result<String> {
    let dir = key
        .key_file
        .parent()
        .context("a key file has a directory")?;
    fsutil::ensure_own_private_dir(dir)?;
    let private = PrivateKey::generate(key.algorithm)?;
    fsutil::write_atomic(&key.key_file, private.pem().as_bytes(), 0o600)?;
    crashpoint::hit(Action::GenerateKey.id(), "written");
    Ok(private.record()?.to_string())
}
