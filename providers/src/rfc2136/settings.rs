//! The settings of `type: rfc2136`, and what the adapter can do.

use std::path::Path;
use std::time::Duration;

use rotor_common::{Interval, ServerAddr};
use serde::Deserialize;

use super::{Rfc2136, Rfc2136Config, TsigKey};
use crate::adapter::{Proof, ProviderInfo, ProviderSettings};
use crate::{DnsProvider, ProviderError};

/// What the adapter is and can do.
pub const INFO: ProviderInfo = ProviderInfo {
    config_type: "rfc2136",
    name: "RFC 2136 dynamic update (BIND, Knot, PowerDNS, …)",
    exact_delete: true,
    lists_values: true,
    batched: true,
    proven_by: Proof::RealServer("BIND 9 and Knot DNS"),
    feature: None,
    notes: "TSIG-signed; one UPDATE per batch, with prerequisites on what was just listed",
};

/// `type: rfc2136`: dynamic updates to a primary nameserver, signed with TSIG.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The primary that accepts updates, `ip[:port]`.
    pub server: ServerAddr,
    /// The TSIG key in BIND's format (none: unsigned, for servers that allow it by address).
    pub tsig_key_file: Option<TsigKeyFile>,
    /// How long to wait for the server (default 10s).
    pub timeout: Option<Interval>,
}

/// A TSIG key file, read and checked while the config is parsed, so that a bad or exposed file
/// is a config error at its line.
#[derive(Clone, Debug)]
pub struct TsigKeyFile(pub TsigKey);

impl<'de> Deserialize<'de> for TsigKeyFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        rotor_common::parse_scalar(deserializer, |path| {
            let key = TsigKey::from_file(Path::new(path)).map_err(|err| err.to_string())?;
            rotor_common::secret::check(Path::new(path), "the TSIG key file")?;
            Ok(Self(key))
        })
    }
}

impl ProviderSettings for Settings {
    fn info(&self) -> ProviderInfo {
        INFO
    }

    fn validate(&self) -> Result<(), String> {
        if self.timeout.is_some_and(Interval::is_zero) {
            return Err("timeout: 0s gives the server no time to answer".into());
        }
        Ok(())
    }

    async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        Ok(Box::new(Rfc2136::new(Rfc2136Config {
            name: name.to_string(),
            server: self.server.0,
            tsig: self.tsig_key_file.as_ref().map(|file| file.0.clone()),
            timeout: self.timeout.map_or(Duration::from_secs(10), |t| t.0),
        })))
    }
}
