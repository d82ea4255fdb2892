//! The settings of `type: dns-update`. Compiled in every build: without the cargo feature
//! `dns-update` a config naming it still parses, and is refused with the reason.

use std::path::PathBuf;

use serde::Deserialize;

use super::hosts::{FEATURE, Host, Needs};
use crate::adapter::{ProviderInfo, ProviderSettings};
use crate::{DnsProvider, ProviderError};

/// `type: dns-update`: one of the DNS hosts the `dns-update` crate reaches, chosen by
/// `provider:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Which host (`powerdns`, `hetzner`, `desec`, `digitalocean`, `linode`, `vultr`, `gandi`,
    /// `porkbun`, `dnsimple`).
    pub provider: Host,
    /// The zones this account serves (their apex names): a record's zone is the longest that
    /// holds its name.
    pub zones: Vec<String>,
    /// The environment variable holding the API token (default: the host's, e.g.
    /// `POWERDNS_API_KEY`).
    pub api_token_env: Option<String>,
    /// A file holding the API token (instead of the environment), readable by rotor's user only.
    pub api_token_file: Option<PathBuf>,
    /// Porkbun: the environment variable holding the secret API key (default
    /// `PORKBUN_SECRET_API_KEY`).
    pub api_secret_env: Option<String>,
    /// Porkbun: a file holding the secret API key, readable by rotor's user only.
    pub api_secret_file: Option<PathBuf>,
    /// PowerDNS: the API's URL (`https://`, or `http://` to this machine), e.g.
    /// `http://127.0.0.1:8081`.
    pub endpoint: Option<String>,
    /// PowerDNS: the server id in the API's paths (default `localhost`).
    pub server_id: Option<String>,
    /// DNSimple: the account id.
    pub account_id: Option<String>,
}

/// Why the family cannot be used in this build.
pub(super) fn missing_feature() -> String {
    format!(
        "rotor was built without the cargo feature \"{FEATURE}\" (rebuild with `--features {FEATURE}`)"
    )
}

/// A zone as rotor writes names: lowercase, without the trailing dot.
pub(super) fn zone_name(zone: &str) -> String {
    zone.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl Settings {
    /// The settings one host does not take, as `(key, given)`.
    fn foreign_fields(&self) -> Vec<&'static str> {
        let needs = self.provider.profile().needs;
        let mut unused = Vec::new();
        if needs != Needs::Endpoint {
            if self.endpoint.is_some() {
                unused.push("endpoint");
            }
            if self.server_id.is_some() {
                unused.push("server_id");
            }
        }
        if needs != Needs::Secret {
            if self.api_secret_env.is_some() {
                unused.push("api_secret_env");
            }
            if self.api_secret_file.is_some() {
                unused.push("api_secret_file");
            }
        }
        if needs != Needs::Account && self.account_id.is_some() {
            unused.push("account_id");
        }
        unused
    }
}

impl ProviderSettings for Settings {
    fn info(&self) -> ProviderInfo {
        self.provider.profile().info
    }

    fn validate(&self) -> Result<(), String> {
        if cfg!(not(feature = "dns-update")) {
            return Err(missing_feature());
        }
        let profile = self.provider.profile();
        if let Some(why) = profile.refused {
            return Err(format!("provider: refused: {why}"));
        }
        if let Some(key) = self.foreign_fields().first() {
            return Err(format!(
                "{key}: not a setting of provider {} ({})",
                profile.info.config_type.trim_start_matches("dns-update/"),
                profile.info.name
            ));
        }
        if self.zones.is_empty() {
            return Err("zones: give the zones this account serves (e.g. [example.com])".into());
        }
        for zone in &self.zones {
            crate::dns::fqdn(&zone_name(zone)).map_err(|why| format!("zones: {why}"))?;
        }
        for (env, file, what) in [
            (&self.api_token_env, &self.api_token_file, "api_token"),
            (&self.api_secret_env, &self.api_secret_file, "api_secret"),
        ] {
            if env.is_some() && file.is_some() {
                return Err(format!("set `{what}_env:` or `{what}_file:`, not both"));
            }
            if env.as_deref().is_some_and(|env| env.trim().is_empty()) {
                return Err(format!("{what}_env: is empty: remove it or give a value"));
            }
            if let Some(file) = file {
                rotor_common::secret::check(file, "the API secret file")
                    .map_err(|why| format!("{what}_file: {why}"))?;
            }
        }
        match profile.needs {
            Needs::Endpoint => {
                let endpoint = self
                    .endpoint
                    .as_deref()
                    .ok_or("endpoint: PowerDNS needs the API's URL (e.g. http://127.0.0.1:8081)")?;
                crate::adapter::secure_url(endpoint).map_err(|why| format!("endpoint: {why}"))?;
                if self
                    .server_id
                    .as_deref()
                    .is_some_and(|id| id.trim().is_empty())
                {
                    return Err("server_id: is empty: remove it or give a value".into());
                }
            }
            Needs::Account
                if self
                    .account_id
                    .as_deref()
                    .is_none_or(|id| id.trim().is_empty()) =>
            {
                return Err("account_id: DNSimple needs the account id".into());
            }
            _ => {}
        }
        Ok(())
    }

    #[cfg(feature = "dns-update")]
    async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        Ok(Box::new(super::DnsUpdate::from_settings(self, name)?))
    }

    #[cfg(not(feature = "dns-update"))]
    async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
        Err(ProviderError::Protocol {
            provider: name.to_string(),
            detail: missing_feature(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, String> {
        serde_json::from_str(json).map_err(|err| err.to_string())
    }

    #[test]
    fn each_host_takes_its_own_settings_only() {
        let pdns = parse(
            r#"{"provider": "powerdns", "zones": ["Example.com."], "endpoint": "http://127.0.0.1:8081"}"#,
        )
        .unwrap();
        assert_eq!(pdns.validate(), Ok(()));
        assert_eq!(pdns.info().config_type, "dns-update/powerdns");
        let err =
            parse(r#"{"provider": "hetzner", "zones": ["example.com"], "endpoint": "https://x"}"#)
                .unwrap()
                .validate()
                .unwrap_err();
        assert!(
            err.starts_with("endpoint: not a setting of provider hetzner"),
            "{err}"
        );
        let err = parse(r#"{"provider": "powerdns", "zones": ["example.com"]}"#)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.starts_with("endpoint: PowerDNS needs"), "{err}");
        let err = parse(
            r#"{"provider": "powerdns", "zones": ["example.com"], "endpoint": "http://dns.example.net:8081"}"#,
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(err.starts_with("endpoint: plain http://"), "{err}");
        let err = parse(r#"{"provider": "dnsimple", "zones": ["example.com"]}"#)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.starts_with("account_id:"), "{err}");
        let err = parse(r#"{"provider": "hetzner", "zones": []}"#)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.starts_with("zones:"), "{err}");
        let err = parse(r#"{"provider": "hetzner", "zones": ["a"], "token": "x"}"#).unwrap_err();
        assert!(err.starts_with("unknown field `token`"), "{err}");
        let err = parse(r#"{"provider": "bind", "zones": ["a"]}"#).unwrap_err();
        assert!(err.starts_with("unknown variant `bind`"), "{err}");
    }

    #[test]
    fn hosts_that_cannot_delete_one_value_are_refused_with_the_reason() {
        for (host, why) in [
            ("namecheap", "every record"),
            ("duckdns", "single TXT value"),
        ] {
            let settings = parse(&format!(
                r#"{{"provider": "{host}", "zones": ["example.com"]}}"#
            ))
            .unwrap();
            let info = settings.info();
            assert!(!info.exact_delete && !info.lists_values, "{host}");
            let err = settings.validate().unwrap_err();
            assert!(
                err.starts_with("provider: refused: ") && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn the_catalogue_names_each_host_once() {
        let all = super::super::hosts::catalogue();
        let mut types: Vec<&str> = all.iter().map(|info| info.config_type).collect();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), all.len());
        assert!(all.iter().all(|info| info.feature == Some(FEATURE)));
    }
}
