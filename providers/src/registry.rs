//! Every provider adapter rotor knows, by the `type:` that selects it in the config: one line
//! each. The engine builds adapters only through [`ProviderConfig`], and never names one.

use crate::adapter::{ProviderInfo, ProviderSettings};
use crate::{DnsProvider, ProviderError};

/// Declares [`ProviderConfig`], its delegation to each adapter's settings, and [`catalogue`],
/// from one line per adapter: `Variant(settings type) => its ProviderInfo entries,`.
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($settings:ty) => $info:expr,)*) => {
        /// A DNS provider's settings, selected by `type:` (each adapter's folder defines its own).
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
        pub enum ProviderConfig {
            $($(#[$doc])* $variant($settings),)*
        }

        impl ProviderSettings for ProviderConfig {
            fn info(&self) -> ProviderInfo {
                match self {
                    $(Self::$variant(settings) => settings.info(),)*
                }
            }

            fn validate(&self) -> Result<(), String> {
                match self {
                    $(Self::$variant(settings) => settings.validate(),)*
                }
            }

            fn check_ttl(&self, ttl: u32) -> Result<(), String> {
                match self {
                    $(Self::$variant(settings) => settings.check_ttl(ttl),)*
                }
            }

            async fn build(&self, name: &str) -> Result<Box<dyn DnsProvider>, ProviderError> {
                match self {
                    $(Self::$variant(settings) => settings.build(name).await,)*
                }
            }
        }

        /// What is known of every provider, in the registry's order (for `rotor providers` and
        /// the README's table).
        pub fn catalogue() -> Vec<ProviderInfo> {
            let mut all = Vec::new();
            $(all.extend($info);)*
            all
        }
    };
}

registry! {
    /// RFC 2136 dynamic update, signed with TSIG.
    Rfc2136(crate::rfc2136::Settings) => [crate::rfc2136::settings::INFO],
    /// AWS Route53 (cargo feature `route53`).
    Route53(crate::route53::Settings) => [crate::route53::settings::INFO],
    /// Cloudflare's API.
    Cloudflare(crate::cloudflare::Settings) => [crate::cloudflare::settings::INFO],
    /// The hosts reached through the dns-update crate (cargo feature `dns-update`).
    #[serde(rename = "dns-update")]
    DnsUpdate(crate::dnsupdate::Settings) => crate::dnsupdate::hosts::catalogue(),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ProviderConfig, String> {
        serde_json::from_str(yaml).map_err(|err| err.to_string())
    }

    #[test]
    fn each_type_selects_its_adapter_and_its_fields_only() {
        let config = parse(r#"{"type": "rfc2136", "server": "127.0.0.1:5300"}"#).unwrap();
        assert_eq!(config.info().config_type, "rfc2136");
        let config = parse(r#"{"type": "cloudflare", "zone_id": "z"}"#).unwrap();
        assert_eq!(config.info().config_type, "cloudflare");
        let err = parse(r#"{"type": "cloudflare", "server": "127.0.0.1"}"#).unwrap_err();
        assert!(err.starts_with("unknown field `server`"), "{err}");
        let err = parse(r#"{"type": "bind"}"#).unwrap_err();
        assert!(err.starts_with("unknown variant `bind`"), "{err}");
    }

    #[test]
    fn a_provider_compiled_out_parses_and_says_which_feature_is_missing() {
        let config = parse(r#"{"type": "route53", "region": "eu-west-1"}"#).unwrap();
        assert_eq!(config.info().feature, Some("route53"));
        let result = config.validate();
        if cfg!(feature = "route53") {
            assert_eq!(result, Ok(()));
        } else {
            let err = result.unwrap_err();
            assert!(
                err.starts_with("rotor was built without the cargo feature \"route53\""),
                "{err}"
            );
        }
    }

    #[test]
    fn the_catalogue_lists_every_type_once() {
        let all = catalogue();
        let mut types: Vec<&str> = all.iter().map(|info| info.config_type).collect();
        assert!(
            types.starts_with(&["rfc2136", "route53", "cloudflare"]),
            "{types:?}"
        );
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), all.len(), "a type listed twice");
    }
}
