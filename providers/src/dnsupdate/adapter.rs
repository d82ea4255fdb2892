//! The adapter: rotor's [`DnsProvider`] over one `dns_update::DnsUpdater`.

use std::fmt;

use dns_update::{DnsRecord, DnsRecordType, DnsUpdater};

use super::hosts::Host;
use super::settings::{Settings, zone_name};
use crate::{Change, DnsProvider, Listing, ProviderError, TxtValue, Zone, async_trait, dns};

/// The environment variable read for Porkbun's secret API key by default.
const SECRET_ENV: &str = "PORKBUN_SECRET_API_KEY";

/// How long one API request may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One DNS host reached through `dns-update`.
pub struct DnsUpdate {
    name: String,
    host: Host,
    zones: Vec<String>,
    updater: DnsUpdater,
}

impl fmt::Debug for DnsUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsUpdate")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("zones", &self.zones)
            .finish_non_exhaustive()
    }
}

impl DnsUpdate {
    /// Builds the adapter named `name` from checked `settings`, reading its secrets.
    pub fn from_settings(settings: &Settings, name: &str) -> Result<Self, ProviderError> {
        let profile = settings.provider.profile();
        let no_secret = |detail: String| ProviderError::Auth {
            provider: name.to_string(),
            detail,
        };
        if let Some(why) = profile.refused {
            return Err(ProviderError::Protocol {
                provider: name.to_string(),
                detail: why.to_string(),
            });
        }
        let token = rotor_common::secret::read_token(
            profile.token_env,
            settings.api_token_env.as_deref(),
            settings.api_token_file.as_deref(),
        )
        .map_err(no_secret)?;
        let token = token.as_str();
        let timeout = Some(TIMEOUT);
        let built = match settings.provider {
            Host::PowerDns => DnsUpdater::new_pdns(
                token,
                settings.endpoint.as_deref(),
                settings.server_id.as_deref(),
                timeout,
            ),
            Host::Hetzner => DnsUpdater::new_hetzner(token, timeout),
            Host::Desec => DnsUpdater::new_desec(token, timeout),
            Host::DigitalOcean => DnsUpdater::new_digitalocean(token, timeout),
            Host::Linode => DnsUpdater::new_linode(token, timeout),
            Host::Vultr => DnsUpdater::new_vultr(token, timeout),
            Host::Gandi => DnsUpdater::new_gandiv5(token, timeout),
            Host::Porkbun => {
                let secret = rotor_common::secret::read_token(
                    SECRET_ENV,
                    settings.api_secret_env.as_deref(),
                    settings.api_secret_file.as_deref(),
                )
                .map_err(no_secret)?;
                DnsUpdater::new_porkbun(token, secret.as_str(), timeout)
            }
            Host::Dnsimple => DnsUpdater::new_dnsimple(
                token,
                settings.account_id.as_deref().unwrap_or_default(),
                timeout,
            ),
            Host::Namecheap | Host::DuckDns => unreachable!("refused above"),
        };
        let updater = built.map_err(|err| ProviderError::Protocol {
            provider: name.to_string(),
            detail: format!("cannot set up the {} client: {err}", profile.info.name),
        })?;
        Ok(Self {
            name: name.to_string(),
            host: settings.provider,
            zones: settings.zones.iter().map(|zone| zone_name(zone)).collect(),
            updater,
        })
    }

    /// The error of a failed call about `zone`, as rotor names errors.
    fn error(&self, zone: &str, operation: &str, err: dns_update::Error) -> ProviderError {
        let provider = self.name.clone();
        let detail = err.to_string();
        match err {
            dns_update::Error::Unauthorized => ProviderError::Auth {
                provider,
                detail: format!(
                    "{} refused the API token (check it and its permissions on {zone})",
                    self.host.profile().info.name
                ),
            },
            dns_update::Error::NotFound => ProviderError::ZoneNotFound {
                provider,
                name: zone.to_string(),
                detail: "the API does not know this zone".into(),
            },
            dns_update::Error::Api(text) if text.starts_with("Failed to send request") => {
                ProviderError::Unreachable {
                    provider,
                    server: self.host.profile().info.name.to_string(),
                    detail: text,
                }
            }
            dns_update::Error::Api(text)
                if text.starts_with("HTTP 403") || text.starts_with("HTTP 401") =>
            {
                ProviderError::Auth {
                    provider,
                    detail: text,
                }
            }
            dns_update::Error::Api(text)
                if text.starts_with("HTTP 429") || text.starts_with("HTTP 5") =>
            {
                ProviderError::Temporary {
                    provider,
                    detail: text,
                    retry_after: None,
                }
            }
            dns_update::Error::Api(text) | dns_update::Error::Response(text) => {
                ProviderError::Refused {
                    provider,
                    operation: operation.to_string(),
                    zone: zone.to_string(),
                    detail: text,
                }
            }
            _ => ProviderError::Protocol { provider, detail },
        }
    }

    /// The one string `dns-update` takes for `value` (it splits it into 255-byte strings).
    fn record(&self, value: &TxtValue) -> Result<DnsRecord, ProviderError> {
        let joined = value.strings().concat();
        String::from_utf8(joined)
            .map(DnsRecord::TXT)
            .map_err(|_| ProviderError::Protocol {
                provider: self.name.clone(),
                detail: "a TXT value that is not UTF-8 cannot be sent through dns-update".into(),
            })
    }
}

/// A listing's values in one order, to compare two listings of a name.
fn sorted(values: &[TxtValue]) -> Vec<&[Vec<u8>]> {
    let mut strings: Vec<&[Vec<u8>]> = values.iter().map(TxtValue::strings).collect();
    strings.sort();
    strings
}

#[async_trait]
impl DnsProvider for DnsUpdate {
    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError> {
        let name = zone_name(fqdn);
        self.zones
            .iter()
            .filter(|zone| dns::within(&name, zone))
            .max_by_key(|zone| zone.len())
            .map(|zone| Zone {
                name: zone.clone(),
                id: None,
            })
            .ok_or_else(|| ProviderError::ZoneNotFound {
                provider: self.name.clone(),
                name: name.clone(),
                detail: format!(
                    "not within the configured zones ({})",
                    self.zones.join(", ")
                ),
            })
    }

    async fn list_txt(&self, zone: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError> {
        let records = self
            .updater
            .list_rrset(fqdn, DnsRecordType::TXT, zone.name.as_str())
            .await
            .map_err(|err| self.error(&zone.name, "listing TXT records", err))?;
        Ok(records
            .into_iter()
            .filter_map(|record| match record {
                DnsRecord::TXT(text) => Some(TxtValue::from_value(&text)),
                _ => None,
            })
            .collect())
    }

    async fn apply(&self, zone: &Zone, changes: &[Change]) -> Result<(), ProviderError> {
        for change in changes {
            let name = match change {
                Change::Add { name, .. } | Change::Delete { name, .. } => name,
            };
            if !dns::within(&zone_name(name), &zone.name) {
                return Err(ProviderError::Protocol {
                    provider: self.name.clone(),
                    detail: format!("{name} is not in zone {}", zone.name),
                });
            }
        }
        for change in changes {
            let result = match change {
                Change::Add { name, value, ttl } => {
                    let record = self.record(value)?;
                    self.updater
                        .add_to_rrset(
                            name.as_str(),
                            DnsRecordType::TXT,
                            *ttl,
                            vec![record],
                            zone.name.as_str(),
                        )
                        .await
                        .map_err(|err| self.error(&zone.name, "adding a TXT record", err))
                }
                Change::Delete { name, value } => {
                    let record = self.record(value)?;
                    self.updater
                        .remove_from_rrset(
                            name.as_str(),
                            DnsRecordType::TXT,
                            vec![record],
                            zone.name.as_str(),
                        )
                        .await
                        .map_err(|err| self.error(&zone.name, "deleting a TXT record", err))
                }
            };
            result?;
        }
        Ok(())
    }

    /// The hosts' APIs have no conditional write: the names are listed again just before the
    /// changes, and nothing is applied if any differs from `read`.
    async fn apply_if_unchanged(
        &self,
        zone: &Zone,
        changes: &[Change],
        read: &Listing,
    ) -> Result<(), ProviderError> {
        let mut names: Vec<String> = changes
            .iter()
            .map(|change| match change {
                Change::Add { name, .. } | Change::Delete { name, .. } => name.clone(),
            })
            .filter(|name| read.contains_key(name))
            .collect();
        names.sort();
        names.dedup();
        let now = self.list_txt_many(zone, &names).await?;
        for name in &names {
            let (before, after) = (&read[name], &now[name]);
            if sorted(before) != sorted(after) {
                return Err(ProviderError::Conflict {
                    provider: self.name.clone(),
                    zone: zone.name.clone(),
                    detail: format!(
                        "{name} held {} TXT value(s) when read, {} now",
                        before.len(),
                        after.len()
                    ),
                });
            }
        }
        self.apply(zone, changes).await
    }

    async fn check(&self, zone: &Zone) -> Result<(), ProviderError> {
        self.list_txt(zone, &zone.name).await.map(|_| ())
    }
}
