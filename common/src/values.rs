//! Scalar values of rotor's config shared by its crates, checked as they are parsed so that every
//! error carries the file's line and column.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes a scalar through `parse`, inside the deserializer's own call, so that an error
/// carries the value's line, column and path.
pub fn parse_scalar<'de, D, T>(
    deserializer: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct ScalarVisitor<F>(F);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for ScalarVisitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.0)(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(ScalarVisitor(parse))
}

/// Implements `Deserialize` for a type through its `FromStr`.
#[macro_export]
macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::parse_scalar(deserializer, str::parse)
            }
        }
    };
}

/// A duration written as `90d`, `4h`, `5m` or `30s` (combinations like `1h30m` too), at most
/// [`Interval::MAX_YEARS`] years (so that adding it to a time cannot overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl FromStr for Interval {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text.trim()).map_err(|err| {
            format!("invalid duration {text:?} ({err}): write e.g. 90d, 4h, 5m or 30s")
        })?;
        if duration > Duration::from_secs(Interval::MAX_YEARS * 365 * 86400) {
            return Err(format!(
                "invalid duration {text:?}: at most {} years",
                Interval::MAX_YEARS
            ));
        }
        Ok(Interval(duration))
    }
}
deserialize_from_str!(Interval);

impl Interval {
    /// The longest duration accepted.
    pub const MAX_YEARS: u64 = 100;

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Whole seconds.
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A server address, `ip` or `ip:port` (`[v6]:port`); port 53 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerAddr(pub SocketAddr);

impl FromStr for ServerAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let addr = match text.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => text
                .parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
                .map_err(|_| {
                    format!(
                        "invalid server address {text:?}: write an IP address, optionally with :port"
                    )
                })?,
        };
        if addr.port() == 0 {
            return Err(format!(
                "invalid server address {text:?}: port 0 reaches no server"
            ));
        }
        if addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(format!(
                "invalid server address {text:?}: {} is not the address of one server",
                addr.ip()
            ));
        }
        Ok(Self(addr))
    }
}
deserialize_from_str!(ServerAddr);

/// A key file's permission bits, written in octal (`"0600"`, `"0640"`). Never any access for
/// others: a private key is for its owner and, at most, the signer's group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mode = u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                format!("invalid file mode {text:?}: write it in octal, like \"0640\"")
            })?;
        if mode & 0o007 != 0 {
            return Err(format!(
                "mode {text} lets every user of the machine read a private key: use 0600, or 0640 with the signer's group"
            ));
        }
        if mode & 0o400 == 0 {
            return Err(format!("mode {text} does not let the key's owner read it"));
        }
        Ok(Self(mode))
    }
}

deserialize_from_str!(FileMode);
