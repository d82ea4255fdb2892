//! Cloudflare's DNS API v4.
//!
//! Records rotor creates carry an ownership marker in their `comment`; rotor deletes only records
//! with that marker and the exact value. TXT content is sent as quoted strings of at most 255
//! bytes and decoded on read-back before any comparison. Several changes in one zone go through
//! the batch endpoint (all or nothing, 200 operations per request).

mod client;
mod content;
pub mod settings;
mod types;

pub use client::Pace;
pub use settings::Settings;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use reqwest::Method;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use crate::{Change, DnsProvider, ProviderError, TxtValue, Zone, async_trait, dns};
use client::Client;
use types::{Batch, NewRecord, Record, RecordId, TokenStatus, ZoneInfo};

/// The `comment` of every record rotor creates (at most 100 characters, the free plans' limit).
pub const MARKER: &str = "managed by rotor (DKIM key rotation): do not edit";

/// Cloudflare's API, unless configured otherwise.
pub const API_URL: &str = "https://api.cloudflare.com/client/v4";

/// Operations per batch request on free plans.
const BATCH_LIMIT: usize = 200;

/// Records per page when listing.
const PER_PAGE: u32 = 100;

/// How to reach Cloudflare. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct CloudflareConfig {
    /// The provider's name in rotor's config, for messages.
    pub name: String,
    /// The API token.
    pub token: Zeroizing<String>,
    /// The zone's identifier, when configured (otherwise found by name).
    pub zone_id: Option<String>,
    /// The API's base URL.
    pub api_url: String,
    /// Rate, retries and timeouts.
    pub pace: Pace,
}

impl fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("zone_id", &self.zone_id)
            .field("api_url", &self.api_url)
            .field("pace", &self.pace)
            .finish()
    }
}

/// The Cloudflare adapter.
pub struct Cloudflare {
    name: String,
    zone_id: Option<String>,
    client: Client,
    zones: OnceCell<Vec<ZoneInfo>>,
}

/// A change turned into API operations.
#[derive(Default)]
struct Plan {
    deletes: Vec<String>,
    posts: Vec<NewRecord>,
}

impl Cloudflare {
    /// An adapter for the account of `config`'s token.
    pub fn new(config: CloudflareConfig) -> Result<Self, ProviderError> {
        let client = Client::new(&config.name, &config.api_url, config.token, config.pace)?;
        Ok(Self {
            name: config.name,
            zone_id: config.zone_id,
            client,
            zones: OnceCell::new(),
        })
    }

    /// How many API requests this adapter has sent.
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    fn zone_not_found(&self, name: &str, detail: String) -> ProviderError {
        ProviderError::ZoneNotFound {
            provider: self.name.clone(),
            name: name.to_string(),
            detail,
        }
    }

    async fn zone_by_id(&self, id: &str, fqdn: &str) -> Result<Zone, ProviderError> {
        let path = format!("/zones/{id}");
        match self
            .client
            .call::<ZoneInfo>(Method::GET, &path, &[], None::<&()>)
            .await
        {
            Ok(envelope) => {
                let zone = envelope
                    .result
                    .ok_or_else(|| self.zone_not_found(fqdn, format!("zone {id}: empty answer")))?;
                Ok(Zone {
                    name: zone.name.to_ascii_lowercase(),
                    id: Some(zone.id),
                })
            }
            Err(ProviderError::Protocol { detail, .. }) => Err(self.zone_not_found(fqdn, detail)),
            Err(err) => Err(err),
        }
    }

    /// Every zone the token can see, listed once per adapter (a few requests however many
    /// domains a pass touches).
    async fn zones(&self) -> Result<&[ZoneInfo], ProviderError> {
        let zones = self
            .zones
            .get_or_try_init(|| self.client.list_all("/zones", &[], 50))
            .await?;
        Ok(zones)
    }

    /// The zone's identifier: as found, or looked up by its exact name (a zone given by name in
    /// rotor's config).
    async fn zone_id(&self, zone: &Zone) -> Result<String, ProviderError> {
        if let Some(id) = zone.id.as_ref().or(self.zone_id.as_ref()) {
            return Ok(id.clone());
        }
        let query = [("name", zone.name.clone())];
        let envelope = self
            .client
            .call::<Vec<ZoneInfo>>(Method::GET, "/zones", &query, None::<&()>)
            .await?;
        envelope
            .result
            .unwrap_or_default()
            .into_iter()
            .find(|z| z.name.eq_ignore_ascii_case(&zone.name))
            .map(|z| z.id)
            .ok_or_else(|| {
                self.zone_not_found(&zone.name, "the token sees no zone of that name".into())
            })
    }

    /// The TXT records at `names`: one filtered query for one name, else the zone's whole TXT
    /// list, every page.
    async fn records(
        &self,
        zone: &Zone,
        names: &BTreeSet<&str>,
    ) -> Result<Vec<Record>, ProviderError> {
        let path = format!("/zones/{}/dns_records", self.zone_id(zone).await?);
        let mut query = vec![("type", "TXT".to_string())];
        if let [name] = names.iter().collect::<Vec<_>>().as_slice() {
            query.push(("name", name.to_string()));
        }
        let mut records: Vec<Record> = self.client.list_all(&path, &query, PER_PAGE).await?;
        records.retain(|record| names.contains(record.name.to_ascii_lowercase().as_str()));
        Ok(records)
    }

    fn plan(
        &self,
        zone: &Zone,
        changes: &[Change],
        existing: &[Record],
    ) -> Result<Plan, ProviderError> {
        let mut plan = Plan::default();
        let same = |record: &Record, name: &str, value: &TxtValue| {
            record.name.eq_ignore_ascii_case(name)
                && content::decode(&record.content).joined() == value.joined()
        };
        for change in changes {
            match change {
                Change::Add { name, value, ttl } => {
                    if !existing.iter().any(|record| same(record, name, value)) {
                        plan.posts.push(NewRecord {
                            kind: "TXT",
                            name: name.clone(),
                            content: content::encode(value),
                            ttl: *ttl,
                            comment: MARKER.to_string(),
                        });
                    }
                }
                Change::Delete { name, value } => {
                    for record in existing.iter().filter(|record| same(record, name, value)) {
                        if record.comment.as_deref() != Some(MARKER) {
                            return Err(ProviderError::Refused {
                                provider: self.name.clone(),
                                operation: format!("delete of a TXT record at {name}"),
                                zone: zone.name.clone(),
                                detail: "the record does not carry rotor's ownership marker in its comment; rotor leaves it alone".into(),
                            });
                        }
                        plan.deletes.push(record.id.clone());
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Sends `plan`: one request for one operation, else batches of 200.
    async fn execute(
        &self,
        zone: &Zone,
        Plan { deletes, posts }: Plan,
    ) -> Result<(), ProviderError> {
        let records = format!("/zones/{}/dns_records", self.zone_id(zone).await?);
        match (deletes.as_slice(), posts.as_slice()) {
            ([], []) => Ok(()),
            ([id], []) => {
                let path = format!("{records}/{id}");
                self.client
                    .call::<serde_json::Value>(Method::DELETE, &path, &[], None::<&()>)
                    .await
                    .map(drop)
            }
            ([], [post]) => self
                .client
                .call::<serde_json::Value>(Method::POST, &records, &[], Some(post))
                .await
                .map(drop),
            _ => {
                let path = format!("{records}/batch");
                let mut deletes = deletes.into_iter().map(|id| RecordId { id }).peekable();
                let mut posts = posts.into_iter().peekable();
                while deletes.peek().is_some() || posts.peek().is_some() {
                    let mut batch = Batch::default();
                    batch.deletes.extend(deletes.by_ref().take(BATCH_LIMIT));
                    batch
                        .posts
                        .extend(posts.by_ref().take(BATCH_LIMIT - batch.deletes.len()));
                    self.client
                        .call::<serde_json::Value>(Method::POST, &path, &[], Some(&batch))
                        .await?;
                }
                Ok(())
            }
        }
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    async fn list_txt(&self, zone: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError> {
        let records = self.records(zone, &BTreeSet::from([fqdn])).await?;
        Ok(records
            .iter()
            .map(|record| content::decode(&record.content))
            .collect())
    }

    /// The zone's TXT records in a few pages, sorted out by name.
    async fn list_txt_many(
        &self,
        zone: &Zone,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<TxtValue>>, ProviderError> {
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let mut found: BTreeMap<String, Vec<TxtValue>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for record in self.records(zone, &wanted).await? {
            if let Some(values) = found.get_mut(&record.name.to_ascii_lowercase()) {
                values.push(content::decode(&record.content));
            }
        }
        Ok(found)
    }

    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError> {
        if let Some(id) = &self.zone_id {
            return self.zone_by_id(id, fqdn).await;
        }
        // The longest suffix of the name that is a zone of this account.
        let name = fqdn.trim_end_matches('.').to_ascii_lowercase();
        let zones = self.zones().await?;
        zones
            .iter()
            .filter(|zone| dns::within(&name, &zone.name.to_ascii_lowercase()))
            .max_by_key(|zone| zone.name.len())
            .map(|zone| Zone {
                name: zone.name.to_ascii_lowercase(),
                id: Some(zone.id.clone()),
            })
            .ok_or_else(|| {
                self.zone_not_found(
                    fqdn,
                    "the token sees no zone above this name (it needs Zone.Zone read on the zone)"
                        .into(),
                )
            })
    }

    async fn apply(&self, zone: &Zone, changes: &[Change]) -> Result<(), ProviderError> {
        if changes.is_empty() {
            return Ok(());
        }
        let names: BTreeSet<&str> = changes
            .iter()
            .map(|change| match change {
                Change::Add { name, .. } | Change::Delete { name, .. } => name.as_str(),
            })
            .collect();
        // A write that failed midway (timeout, 5xx) may have been applied: look again, then
        // write only what is still missing.
        let mut attempt = 0;
        loop {
            let existing = self.records(zone, &names).await?;
            let plan = self.plan(zone, changes, &existing)?;
            match self.execute(zone, plan).await {
                Err(err) if err.is_transient() && attempt < 3 => {
                    tracing::debug!("{}: {err}; looking again before retrying", self.name);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn check(&self, zone: &Zone) -> Result<(), ProviderError> {
        let envelope = self
            .client
            .call::<TokenStatus>(Method::GET, "/user/tokens/verify", &[], None::<&()>)
            .await?;
        match envelope.result {
            Some(token) if token.status == "active" => {}
            other => {
                return Err(ProviderError::Auth {
                    provider: self.name.clone(),
                    detail: format!("the token is not active ({:?})", other.map(|t| t.status)),
                });
            }
        }
        let id = self.zone_id(zone).await?;
        self.zone_by_id(&id, &zone.name).await.map(drop)
    }
}
