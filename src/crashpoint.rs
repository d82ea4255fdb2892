//! Test hook: `ROTOR_CRASH_AT=<action>:<point>` aborts the process there, as a power cut would,
//! so tests can show that the next run resumes safely from every side-effect boundary.

/// Aborts the process if `ROTOR_CRASH_AT` names this point (e.g. `publish:applied`).
pub fn hit(action: &str, point: &str) {
    if std::env::var("ROTOR_CRASH_AT").is_ok_and(|wanted| wanted == format!("{action}:{point}")) {
        eprintln!("rotor: crashing at {action}:{point} (ROTOR_CRASH_AT)");
        std::process::abort();
    }
}
