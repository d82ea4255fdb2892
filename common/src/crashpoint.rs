//! Test hook: `ROTOR_CRASH_AT=<action>:<point>` aborts the process there, as a power cut would,
//! so tests can show that the next run resumes safely from every side-effect boundary.
//! `<action>:<point>#N` aborts at the Nth time the point is reached in the process (e.g. the
//! second file written: between two tables of one signer).
//!
//! `ROTOR_STOP_AT=<action>:<point>` stops the process there instead (SIGSTOP to itself, every
//! thread with it), as a frozen host or a process stopped by hand would; it goes on where it
//! was when it is sent SIGCONT.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many times the armed point was reached.
static HITS: AtomicUsize = AtomicUsize::new(0);

/// Whether the stop point was reached already (a process stops there once).
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Aborts the process if `ROTOR_CRASH_AT` names this point (e.g. `publish:applied`); stops it
/// (the first time) if `ROTOR_STOP_AT` does.
pub fn hit(action: &str, point: &str) {
    if std::env::var("ROTOR_STOP_AT").is_ok_and(|at| at == format!("{action}:{point}"))
        && !STOPPED.swap(true, Ordering::SeqCst)
    {
        eprintln!("rotor: stopping at {action}:{point} (ROTOR_STOP_AT)");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
    let Ok(wanted) = std::env::var("ROTOR_CRASH_AT") else {
        return;
    };
    let (name, nth) = match wanted.split_once('#') {
        Some((name, nth)) => (name, nth.parse().unwrap_or(1)),
        None => (wanted.as_str(), 1),
    };
    if name == format!("{action}:{point}") && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("rotor: crashing at {wanted} (ROTOR_CRASH_AT)");
        std::process::abort();
    }
}
