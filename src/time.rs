//! Where the time comes from, and how it is shown.

use std::time::Duration;

/// Where the time comes from (injectable for tests).
pub trait Clock {
    /// Now, in Unix seconds.
    fn now(&self) -> u64;
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
