//! `monitor:`: how DMARC aggregate reports watch a rotation: the new selector's failure rate
//! after a switch (an alert, and with `rollback` a switch back), and the old selector's silence
//! before its record is removed.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::Interval;

/// A share written as a percentage (`5%`, `0.5%`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percent(pub f64);

impl FromStr for Percent {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate {text:?}: write a percentage such as 5% or 0.5%");
        let number = text.trim().strip_suffix('%').ok_or_else(bad)?;
        let value: f64 = number.trim().parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&value) {
            return Err(bad());
        }
        Ok(Self(value / 100.0))
    }
}
rotor_common::deserialize_from_str!(Percent);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

/// `monitor:` as written (every key optional).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    window: Option<Interval>,
    min_messages: Option<u64>,
    max_fail_rate: Option<Percent>,
    rollback: Option<bool>,
    retire_when_silent: Option<Interval>,
    max_wait: Option<Interval>,
}

/// How reports watch a domain's rotations.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    /// How long after a switch the new selector's failure rate is watched (default 7d).
    pub window: Interval,
    /// The fewest messages a failure rate is judged on (default 100).
    pub min_messages: u64,
    /// The failure rate above which rotor alerts (default 5%).
    pub max_fail_rate: Percent,
    /// Whether a failing new selector is switched back to the previous key while it is still
    /// published (default false: alert only).
    pub rollback: bool,
    /// How long reports must have shown no mail signed with a replaced selector before its
    /// record is removed (default 48h), after its grace window.
    pub retire_when_silent: Interval,
    /// After this (from the replacement), a replaced key is retired even without reports
    /// (default 30d), and says so.
    pub max_wait: Interval,
}

impl RawMonitor {
    /// The monitor, with built-in defaults for what is not said.
    pub(super) fn resolve(&self) -> Monitor {
        let or = |value: Option<Interval>, default: &str| {
            value.unwrap_or_else(|| default.parse().expect("built-in defaults are valid"))
        };
        Monitor {
            window: or(self.window, "7d"),
            min_messages: self.min_messages.unwrap_or(100),
            max_fail_rate: self.max_fail_rate.unwrap_or(Percent(0.05)),
            rollback: self.rollback.unwrap_or(false),
            retire_when_silent: or(self.retire_when_silent, "48h"),
            max_wait: or(self.max_wait, "30d"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_percentages_and_defaults_fill_the_rest() {
        assert_eq!("5%".parse::<Percent>(), Ok(Percent(0.05)));
        assert_eq!("0.5 %".parse::<Percent>(), Ok(Percent(0.005)));
        for bad in ["5", "-1%", "101%", "x%"] {
            assert!(bad.parse::<Percent>().is_err(), "{bad}");
        }
        let raw: RawMonitor = serde_yaml::from_str("rollback: true\nmax_fail_rate: 2%").unwrap();
        let monitor = raw.resolve();
        assert!(monitor.rollback);
        assert_eq!(monitor.max_fail_rate, Percent(0.02));
        assert_eq!(monitor.window.secs(), 7 * 86_400);
        assert_eq!(monitor.min_messages, 100);
        assert!(serde_yaml::from_str::<RawMonitor>("windw: 1d").is_err());
    }
}
