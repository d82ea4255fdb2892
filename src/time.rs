//! Where the time comes from, and how it is shown.

use std::sync::OnceLock;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use rotor_state::BootClock;

/// Where the time comes from (injectable for tests).
pub trait Clock {
    /// Now, in Unix seconds.
    fn now(&self) -> u64;

    /// Now on the machine's boot clock, which no one sets: `None` where it cannot be read.
    fn boot(&self) -> Option<BootClock> {
        None
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    fn boot(&self) -> Option<BootClock> {
        static ID: OnceLock<Option<u128>> = OnceLock::new();
        let id = ID.get_or_init(|| {
            u128::from_str_radix(&rotor_state::boot_id()?.replace('-', ""), 16).ok()
        });
        let since_boot = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
        Some(BootClock {
            id: (*id)?,
            secs: u64::try_from(since_boot.tv_sec()).ok()?,
        })
    }
}

/// Formats Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `secs` (Unix seconds) as an RFC 5322 date (`Tue, 1 Dec 2026 12:00:00 +0000`), for messages.
pub fn rfc2822(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_default()
        .to_rfc2822()
}
