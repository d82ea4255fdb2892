//! The settings of `type: cloudflare`, and what the adapter can do.

use std::path::PathBuf;

use serde::Deserialize;

use super::{API_URL, Cloudflare, CloudflareConfig, Pace};
use crate::adapter::{Proof, ProviderInfo, ProviderSettings, not_blank, secure_url};
use crate::{DnsProvider, ProviderError};

/// What the adapter is and can do.
pub const INFO: ProviderInfo = ProviderInfo {
    config_type: "cloudflare",
    name: "Cloudflare",
    exact_delete: true,
    lists_values: true,
    batched: true,
    proven_by: Proof::ContractDouble("checked against Cloudflare's OpenAPI schema"),
    feature: None,
    notes: "deletes only records carrying rotor's comment marker; TTL 1 (automatic) or 30 to 86400 s",
};

/// The environment variable read for the API token unless `api_token_env:` names another.
const TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";

/// `type: cloudflare`: Cloudflare's DNS API v4, with an API token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The environment variable holding the API token (default `CLOUDFLARE_API_TOKEN`).
    pub api_token_env: Option<String>,
    /// A file holding the API token (instead of the environment), readable by rotor's user only.
    pub api_token_file: Option<PathBuf>,
    /// The zone's id (otherwise found by name).
    pub zone_id: Option<String>,
    /// The API's base URL (default Cloudflare's; for proxies and tests).
    pub api_url: Option<String>,
}

impl ProviderSettings for Settings {
    fn info(&self) -> ProviderInfo {
        INFO
    }

    fn validate(&self) -> Result<(), String> {
        if self.api_token_env.is_some() && self.api_token_file.is_some() {
            return Err("set `api_token_env:` or `api_token_file:`, not both".into());
        }
        not_blank("api_token_env", self.api_token_env.as_deref())?;
        not_blank("zone_id", self.zone_id.as_deref())?;
        if let Some(url) = &self.api_url {
            secure_url(url).map_err(|why| format!("api_url: {why} (it carries the API token)"))?;
        }
        if let Some(file) = &self.api_token_file {
            rotor_common::secret::check(file, "the API token file")
                .map_err(|why| format!("api_token_file: {why}"))?;
        }
        Ok(())
    }

    fn check_ttl(&self, ttl: u32) -> Result<(), String> {
        if ttl == 1 || (30..=86400).contains(&ttl) {
            Ok(())
        } else {
            Err(format!(
                "TTL {ttl} is refused by Cloudflare, which takes 1 (automatic) or 30 to 86400 seconds"
            ))
        }
    }

    async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        let token = rotor_common::secret::read_token(
            TOKEN_ENV,
            self.api_token_env.as_deref(),
            self.api_token_file.as_deref(),
        )
        .map_err(|detail| ProviderError::Settings {
            provider: name.to_string(),
            detail,
        })?;
        let adapter = Cloudflare::new(CloudflareConfig {
            name: name.to_string(),
            token,
            zone_id: self.zone_id.clone(),
            api_url: self.api_url.clone().unwrap_or_else(|| API_URL.to_string()),
            pace: Pace::default(),
        })?;
        Ok(Box::new(adapter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: Option<&str>, file: Option<PathBuf>) -> Settings {
        Settings {
            api_token_env: env.map(str::to_string),
            api_token_file: file,
            zone_id: None,
            api_url: None,
        }
    }

    #[tokio::test]
    async fn the_token_comes_from_one_place() {
        assert_eq!(
            settings(Some("CF"), Some("/t".into())).validate(),
            Err("set `api_token_env:` or `api_token_file:`, not both".into())
        );
        let Err(err) = settings(Some("ROTOR_TEST_UNSET_TOKEN"), None)
            .build("cf")
            .await
        else {
            panic!("built without a token");
        };
        let err = err.to_string();
        assert!(
            err.starts_with("providers.cf: ")
                && err.contains("ROTOR_TEST_UNSET_TOKEN")
                && err.contains("api_token_file"),
            "{err}"
        );
    }
}
