//! `rotor daemon`: the pass of `rotor run`, at start and then on the config's cron `schedule`.
//!
//! The store stays the only state: a restart loses nothing, and the pass at start catches up
//! whatever came due while the daemon was not running (a missed tick needs nothing more, since
//! every pass does all that is due). Each pass takes the same lock as `rotor run`, so the two
//! never act at once; a tick that finds the lock held is skipped. SIGTERM (or SIGINT) ends the
//! pass after the step in progress, then the daemon; SIGHUP re-reads the config, keeping the
//! old one if the new one is bad.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use crate::commands::{self, Code, Exit};
use crate::config::Config;
use crate::engine::Parts;
use crate::progress::Progress;

/// What wakes the daemon.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// The schedule's time came.
    Tick,
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// Listens for signals in a task of its own, so that they are seen even while a pass is busy:
/// SIGTERM or SIGINT sets `stop` at once (the pass ends after its step in progress).
fn listen(stop: Arc<AtomicBool>, wake: mpsc::UnboundedSender<Wake>) -> Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = terminate.recv() => Wake::Stop,
                _ = interrupt.recv() => Wake::Stop,
                _ = hangup.recv() => Wake::Reload,
            };
            if event == Wake::Stop {
                tracing::info!("rotor daemon: stopping after the step in progress");
                stop.store(true, Ordering::SeqCst);
            }
            if wake.send(event).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Adds a job that wakes the daemon at each time of `config`'s schedule.
async fn add_job(
    scheduler: &JobScheduler,
    config: &Config,
    wake: &mpsc::UnboundedSender<Wake>,
) -> Result<Uuid> {
    let wake = wake.clone();
    let job = Job::new_async(config.schedule.0.as_str(), move |_, _| {
        let wake = wake.clone();
        Box::pin(async move {
            let _ = wake.send(Wake::Tick);
        })
    })
    .with_context(|| format!("schedule {}", config.schedule))?;
    Ok(scheduler.add(job).await?)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(path: &Path, mut config: Config) -> Result<Code> {
    let stop = Arc::new(AtomicBool::new(false));
    let (wake, mut woken) = mpsc::unbounded_channel();
    listen(stop.clone(), wake.clone())?;
    let mut scheduler = JobScheduler::new().await?;
    let mut job = add_job(&scheduler, &config, &wake).await?;
    scheduler.start().await?;
    tracing::info!(
        "rotor daemon: a pass now, then on schedule {}",
        config.schedule
    );
    let mut event = Wake::Tick;
    loop {
        match event {
            Wake::Stop => break,
            Wake::Tick => {
                one_pass(&config, &stop).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                // Ticks that came during the pass are served by it; a reload or stop that
                // came meanwhile is kept and served next.
                if let Some(next) = after_pass(&mut woken) {
                    event = next;
                    continue;
                }
            }
            Wake::Reload => match commands::load(path) {
                Ok(new) => {
                    if new.schedule != config.schedule {
                        scheduler.remove(&job).await?;
                        job = add_job(&scheduler, &new, &wake).await?;
                    }
                    config = new;
                    tracing::info!("rotor daemon: config {} reloaded", path.display());
                }
                Err(err) => tracing::error!("{err:#}; keeping the previous config"),
            },
        }
        event = match woken.recv().await {
            Some(event) => event,
            None => break,
        };
    }
    scheduler.shutdown().await?;
    tracing::info!("rotor daemon: stopped");
    Ok(0)
}

/// What woke the daemon while a pass ran, ticks aside (the pass served them): the first
/// reload or stop, which must not be lost.
fn after_pass(woken: &mut mpsc::UnboundedReceiver<Wake>) -> Option<Wake> {
    while let Ok(event) = woken.try_recv() {
        if event != Wake::Tick {
            return Some(event);
        }
    }
    None
}

/// One pass under the lock, ending after the step in progress once `stop` is set. Errors are
/// logged: the daemon goes on.
async fn one_pass(config: &Config, stop: &AtomicBool) {
    let parts = match Parts::from_config(config).await {
        Ok(parts) => parts,
        Err(err) => return tracing::error!("{err}"),
    };
    let _lock = match commands::lock(config) {
        Ok(lock) => lock,
        Err(err) if err.downcast_ref::<Exit>().is_some() => {
            return tracing::info!("{err}: this tick is skipped");
        }
        Err(err) => return tracing::error!("{err:#}"),
    };
    let store = match commands::open_store(config) {
        Ok(store) => store,
        Err(err) => return tracing::error!("{err:#}"),
    };
    match commands::pass(
        config,
        store,
        parts,
        &BTreeSet::new(),
        Some(stop),
        Progress::hidden(),
    )
    .await
    {
        Ok(report) => {
            for warning in &report.warnings {
                tracing::warn!("{warning}");
            }
            for failure in &report.failed {
                tracing::error!(kind = %failure.kind, "{}: {}", failure.domain, failure.error);
            }
        }
        Err(err) => tracing::error!("{err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_or_stop_during_a_pass_is_kept() {
        let (wake, mut woken) = mpsc::unbounded_channel();
        for event in [Wake::Tick, Wake::Reload, Wake::Tick, Wake::Stop] {
            wake.send(event).unwrap();
        }
        assert_eq!(after_pass(&mut woken), Some(Wake::Reload));
        assert_eq!(after_pass(&mut woken), Some(Wake::Stop));
        assert_eq!(after_pass(&mut woken), None);
    }
}
