//! A DNS provider as a test's rotor config names it: its entry under `providers:` and the
//! environment its credentials come from. Each harness module makes its own (`Bind::provider`,
//! [`crate::cloudflare::provider`], [`crate::route53::provider`]), so the config a test writes
//! needs no edit for a new provider.

use std::fmt::Display;

use crate::Bind;

/// One provider's settings for a rotor config, and the environment they need.
#[derive(Clone, Debug)]
pub struct ProviderUnderTest {
    /// The entry's keys and values, `type:` first, in the order written.
    pub settings: Vec<(String, String)>,
    /// What every rotor command needs in its environment (credentials, endpoints).
    pub env: Vec<(String, String)>,
}

impl ProviderUnderTest {
    /// A provider selected by `type: config_type`, with no other setting yet.
    pub fn new(config_type: &str) -> Self {
        Self {
            settings: vec![("type".into(), config_type.into())],
            env: Vec::new(),
        }
    }

    /// Adds the setting `key: value`.
    pub fn set(mut self, key: &str, value: impl Display) -> Self {
        self.settings.push((key.into(), value.to_string()));
        self
    }

    /// Adds `key=value` to the environment of every rotor command.
    pub fn env(mut self, key: &str, value: impl Display) -> Self {
        self.env.push((key.into(), value.to_string()));
        self
    }

    /// Its entry named `name`, as it stands under `providers:` (no final newline).
    pub fn entry(&self, name: &str) -> String {
        let mut entry = format!("  {name}:");
        for (key, value) in &self.settings {
            entry.push_str(&format!("\n    {key}: {value}"));
        }
        entry
    }
}

impl Bind {
    /// RFC 2136 updates to this primary, signed with its TSIG key.
    pub fn provider(&self) -> ProviderUnderTest {
        ProviderUnderTest::new("rfc2136")
            .set("server", format!("127.0.0.1:{}", self.primary.port))
            .set("tsig_key_file", self.tsig_file.display())
    }
}
