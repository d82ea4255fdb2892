//! The settings of `type: route53`, and what the adapter can do. Compiled in every build: without
//! the cargo feature `route53` a config naming it still parses, and is refused with the reason.

use serde::Deserialize;

use crate::adapter::{Proof, ProviderInfo, ProviderSettings, not_blank};
use crate::{DnsProvider, ProviderError};

/// What the adapter is and can do.
pub const INFO: ProviderInfo = ProviderInfo {
    config_type: "route53",
    name: "AWS Route53",
    exact_delete: true,
    lists_values: true,
    batched: true,
    proven_by: Proof::ContractDouble("moto, the AWS API emulation"),
    feature: Some(FEATURE),
    notes: "the standard AWS credential chain; changes a TXT set only by deleting the exact set just read and creating the new one in the same batch",
};

/// The cargo feature the adapter is compiled with.
const FEATURE: &str = "route53";

/// `type: route53`: AWS Route53, with the standard AWS credential chain (environment, profile,
/// SSO, `credential_process`, container or instance role).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The profile of `~/.aws/config` to use.
    pub profile: Option<String>,
    /// The region requests are signed for (default: the environment's, else us-east-1).
    pub region: Option<String>,
    /// The hosted zone's id (otherwise found by name).
    pub zone_id: Option<String>,
    /// Whether zone discovery may pick a private hosted zone (default no).
    #[serde(default)]
    pub private_zones: bool,
}

/// Why a provider cannot be used in this build.
fn missing_feature() -> String {
    format!(
        "rotor was built without the cargo feature \"{FEATURE}\" (rebuild with `--features {FEATURE}`)"
    )
}

impl ProviderSettings for Settings {
    fn info(&self) -> ProviderInfo {
        INFO
    }

    fn validate(&self) -> Result<(), String> {
        if cfg!(not(feature = "route53")) {
            return Err(missing_feature());
        }
        not_blank("profile", self.profile.as_deref())?;
        not_blank("region", self.region.as_deref())?;
        not_blank("zone_id", self.zone_id.as_deref())
    }

    #[cfg(feature = "route53")]
    async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        use super::{Route53, Route53Config};
        let adapter = Route53::new(Route53Config {
            profile: self.profile.clone(),
            region: self.region.clone(),
            zone_id: self.zone_id.clone(),
            private_zones: self.private_zones,
            ..Route53Config::new(name)
        })
        .await?;
        Ok(Box::new(adapter))
    }

    #[cfg(not(feature = "route53"))]
    async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        Err(ProviderError::Settings {
            provider: name.to_string(),
            detail: missing_feature(),
        })
    }
}
