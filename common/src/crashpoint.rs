//! Test hook: `ROTOR_CRASH_AT=<action>:<point>` aborts the process there, as a power cut would,
//! so tests can show that the next run resumes safely from every side-effect boundary.
//! `<action>:<point>#N` aborts at the Nth time the point is reached in the process (e.g. the
//! second file written: between two tables of one signer).

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many times the armed point was reached.
static HITS: AtomicUsize = AtomicUsize::new(0);

/// Aborts the process if `ROTOR_CRASH_AT` names this point (e.g. `publish:applied`).
pub fn hit(action: &str, point: &str) {
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
