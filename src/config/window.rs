//! Activation windows: `"Mon-Fri 04:00-06:00"` in a time zone. Signers are switched only inside
//! one; publishing and retiring happen at any time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// Days and a daily time range, e.g. `Mon-Fri 04:00-06:00` or `Sat,Sun 22:00-02:00` (across
/// midnight: it starts on the listed days). Without days, every day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationWindow {
    text: String,
    days: [bool; 7],
    start: NaiveTime,
    length: Duration,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(text: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| text.eq_ignore_ascii_case(d))
        .ok_or_else(|| format!("unknown day {text:?} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("invalid time {text:?}: use HH:MM (24-hour)"))
}

impl FromStr for ActivationWindow {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (days_text, range) = match text.trim().rsplit_once(' ') {
            Some((days, range)) => (days.trim(), range),
            None => ("Mon-Sun", text.trim()),
        };
        let mut days = [false; 7];
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (day(from)?, day(to)?);
                    let mut d = from;
                    loop {
                        days[d] = true;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(part)?] = true,
            }
        }
        let (from, to) = range.split_once('-').ok_or_else(|| {
            format!("invalid window {text:?}: write it like \"Mon-Fri 04:00-06:00\"")
        })?;
        let (start, end) = (time(from)?, time(to)?);
        let mut length = end - start;
        if length <= Duration::zero() {
            length += Duration::days(1);
        }
        Ok(Self {
            text: text.trim().to_string(),
            days,
            start,
            length,
        })
    }
}

impl fmt::Display for ActivationWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ActivationWindow {
    /// `None` if the window is open at `now` (Unix seconds) in `zone`, else when it next opens.
    pub fn next_open(&self, now: u64, zone: Tz) -> Option<u64> {
        let now = zone.timestamp_opt(now as i64, 0).single()?;
        let today = now.date_naive();
        // Windows that started yesterday may still be open; look a week ahead for the next.
        let mut next = None;
        for offset in -1..=7 {
            let date = today + Duration::days(offset);
            if !self.days[date.weekday().num_days_from_monday() as usize] {
                continue;
            }
            let Some(start) = local(zone, date.and_time(self.start)) else {
                continue;
            };
            if start <= now && now < start + self.length {
                return None;
            }
            if start > now && next.is_none() {
                next = Some(start.timestamp() as u64);
            }
        }
        next
    }
}

/// A local time in `zone`; across a DST gap, the first valid instant after it.
fn local(zone: Tz, time: chrono::NaiveDateTime) -> Option<DateTime<Tz>> {
    (0..4).find_map(|hours| {
        zone.from_local_datetime(&(time + Duration::hours(hours)))
            .earliest()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(zone: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> u64 {
        zone.with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .timestamp() as u64
    }

    #[test]
    fn weekday_mornings_in_berlin() {
        let window: ActivationWindow = "Mon-Fri 04:00-06:00".parse().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Monday 2026-11-30, 05:00 in Berlin: open.
        assert_eq!(
            window.next_open(at(berlin, 2026, 11, 30, 5, 0), berlin),
            None
        );
        // 06:00 closes it; the next opening is Tuesday 04:00.
        assert_eq!(
            window.next_open(at(berlin, 2026, 11, 30, 6, 0), berlin),
            Some(at(berlin, 2026, 12, 1, 4, 0))
        );
        // Friday evening waits for Monday.
        assert_eq!(
            window.next_open(at(berlin, 2026, 12, 4, 20, 0), berlin),
            Some(at(berlin, 2026, 12, 7, 4, 0))
        );
        // The same instant is 04:30 UTC but 05:30 in Berlin.
        assert_eq!(
            window.next_open(at(Tz::UTC, 2026, 11, 30, 4, 30), berlin),
            None
        );
    }

    #[test]
    fn windows_across_midnight_and_day_lists() {
        let window: ActivationWindow = "Sat,Sun 22:00-02:00".parse().unwrap();
        let utc = Tz::UTC;
        // Sunday 2026-12-06 01:00: inside Saturday's window.
        assert_eq!(window.next_open(at(utc, 2026, 12, 6, 1, 0), utc), None);
        // Monday 01:00: inside Sunday's window.
        assert_eq!(window.next_open(at(utc, 2026, 12, 7, 1, 0), utc), None);
        // Monday 03:00: next Saturday 22:00.
        assert_eq!(
            window.next_open(at(utc, 2026, 12, 7, 3, 0), utc),
            Some(at(utc, 2026, 12, 12, 22, 0))
        );
        let daily: ActivationWindow = "04:00-05:00".parse().unwrap();
        assert_eq!(
            daily.next_open(at(utc, 2026, 12, 7, 3, 0), utc),
            Some(at(utc, 2026, 12, 7, 4, 0))
        );
    }

    #[test]
    fn bad_windows_are_explained() {
        assert!(
            "Mon-Fry 04:00-06:00"
                .parse::<ActivationWindow>()
                .unwrap_err()
                .contains("Fry")
        );
        assert!(
            "Mon 4h-6h"
                .parse::<ActivationWindow>()
                .unwrap_err()
                .contains("HH:MM")
        );
        assert!(
            "Mon 04:00"
                .parse::<ActivationWindow>()
                .unwrap_err()
                .contains("like")
        );
    }
}
