//! What each provider adapter's folder gives the registry: its settings type (serde,
//! `deny_unknown_fields`, a doc line per field), their checks, the construction of the adapter,
//! and what the adapter can and cannot do.

use crate::{DnsProvider, ProviderError};

/// What is known of a provider, for `rotor providers` and the README's provider table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProviderInfo {
    /// The `type:` (and, in a family, `provider:`) that selects it in the config.
    pub config_type: &'static str,
    /// The DNS host or protocol, as operators know it.
    pub name: &'static str,
    /// Whether it deletes one exact TXT value and leaves the others at that name.
    pub exact_delete: bool,
    /// Whether it lists every TXT value at a name (so rotor can see foreign records).
    pub lists_values: bool,
    /// Whether a batch of changes to a zone is applied as one request (else one per change).
    pub batched: bool,
    /// What proves it works: a real server or a contract double in rotor's suite, or only the
    /// library's own support.
    pub proven_by: Proof,
    /// The cargo feature it is compiled with, when it is optional.
    pub feature: Option<&'static str>,
    /// What an operator must know (limits, what rotor refuses and why).
    pub notes: &'static str,
}

/// What proves a provider adapter works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// The conformance suite and end-to-end rotations run against this real server.
    RealServer(&'static str),
    /// The conformance suite runs against a double that enforces the documented contract.
    ContractDouble(&'static str),
    /// Only the library rotor uses for it supports it; rotor's suite does not reach it.
    LibraryOnly,
}

/// The settings of one provider adapter, as its folder defines them.
pub trait ProviderSettings {
    /// What the adapter is and can do.
    fn info(&self) -> ProviderInfo;

    /// Checks what serde cannot (settings that depend on each other, what the adapter refuses),
    /// when the config is loaded. A message about one field starts with its key and a colon
    /// (`api_url: plain http:// ...`), so the error points at that line; any other message is
    /// shown at the provider's entry.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Checks that the provider accepts records with this TTL (seconds); the message says
    /// which TTLs it takes.
    fn check_ttl(&self, ttl: u32) -> Result<(), String> {
        let _ = ttl;
        Ok(())
    }

    /// Builds the adapter named `name` in the config. Secrets (tokens, passwords) are read
    /// here, not when the config is loaded, so commands that call no provider need none.
    fn build(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Box<dyn DnsProvider>, ProviderError>> + Send;
}

/// Whether `url` may carry a secret (an API token, a password): `https://`, or `http://` only to
/// this machine (proxies and tests).
pub fn secure_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|err| format!("not a URL ({err})"))?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(
            "plain http:// would send it unencrypted: use https://, or http:// only to this machine (127.0.0.1, ::1, localhost)"
                .into(),
        ),
        other => Err(format!("the scheme {other}: is not https:")),
    }
}

/// The error of a setting left empty (`key: ""`), if `value` is.
pub fn not_blank(field: &str, value: Option<&str>) -> Result<(), String> {
    match value {
        Some(value) if value.trim().is_empty() => {
            Err(format!("{field}: is empty: remove it or give a value"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_over_https_or_to_this_machine() {
        for fine in [
            "https://api.cloudflare.com/client/v4",
            "http://127.0.0.1:8080/x",
            "http://127.1.2.3/",
            "http://[::1]:99/",
            "http://LOCALHOST/",
        ] {
            assert_eq!(secure_url(fine), Ok(()), "{fine}");
        }
        for bad in [
            "http://hooks.example.com/x",
            "http://10.0.0.1/",
            "http://[::2]/",
            "ftp://x/",
            "hooks.example.com",
        ] {
            assert!(secure_url(bad).is_err(), "{bad}");
        }
    }
}
