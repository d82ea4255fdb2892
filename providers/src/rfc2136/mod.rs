//! RFC 2136 dynamic update, signed with TSIG: BIND, Knot, PowerDNS and any server that speaks it.
//!
//! Adds only rotor's own record, deletes only by exact value (never a whole RRset), and sends one
//! UPDATE message per batch, so a batch applies atomically. With the listing the changes were
//! decided on, the UPDATE carries prerequisites (RFC 2136 section 2.4): each name's TXT RRset is
//! exactly the values read, or does not exist if none were, so a concurrent change by someone else
//! makes the server refuse the whole message (NXRRSET, YXRRSET) instead of rotor writing blindly.

pub mod settings;
mod tsig;

pub use settings::Settings;
pub use tsig::{TsigKey, TsigKeyError};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use hickory_net::NetError;
use hickory_proto::op::{DnsResponse, Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::dns::{self, Transport};
use crate::{Change, DnsProvider, Listing, ProviderError, TxtValue, Zone, async_trait};

/// How many bytes of records one UPDATE message carries at most (a DNS message over TCP holds
/// 65,535 bytes, TSIG and headers included).
const MESSAGE_BUDGET: usize = 60_000;

/// The operation name of a TXT lookup, in errors.
const LOOKUP: &str = "TXT lookup";

/// How many TXT lookups [`Rfc2136::list_txt_many`] has in flight at once.
const PARALLEL_LOOKUPS: usize = 32;

/// How to reach the primary server.
#[derive(Clone, Debug)]
pub struct Rfc2136Config {
    /// The provider's name in rotor's config, for messages.
    pub name: String,
    /// The primary nameserver that accepts updates.
    pub server: SocketAddr,
    /// The TSIG key that signs updates (none: unsigned, for servers that allow it by address).
    pub tsig: Option<TsigKey>,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

/// The RFC 2136 adapter.
#[derive(Debug)]
pub struct Rfc2136 {
    config: Rfc2136Config,
}

impl Rfc2136 {
    /// An adapter for the server in `config`.
    pub fn new(config: Rfc2136Config) -> Self {
        Self { config }
    }

    fn name(&self, fqdn: &str) -> Result<Name, ProviderError> {
        dns::fqdn(fqdn).map_err(|detail| self.protocol(detail))
    }

    fn protocol(&self, detail: String) -> ProviderError {
        ProviderError::Protocol {
            provider: self.config.name.clone(),
            detail,
        }
    }

    /// Maps a transport failure to a provider error, recognising TSIG rejections (BIND answers
    /// them with an empty MAC, which hickory reports as a malformed signature).
    fn net_error(&self, err: NetError) -> ProviderError {
        let detail = err.to_string();
        let lowered = detail.to_ascii_lowercase();
        if lowered.contains("hmac") || lowered.contains("tsig") {
            ProviderError::Auth {
                provider: self.config.name.clone(),
                detail: format!(
                    "TSIG authentication failed (check the key name and secret): {detail}"
                ),
            }
        } else {
            ProviderError::Unreachable {
                provider: self.config.name.clone(),
                server: self.config.server.to_string(),
                detail,
            }
        }
    }

    fn rcode_error(&self, code: ResponseCode, operation: &str, zone: &str) -> ProviderError {
        let provider = self.config.name.clone();
        let refused = |detail: &str| ProviderError::Refused {
            provider: provider.clone(),
            operation: operation.to_string(),
            zone: zone.to_string(),
            detail: detail.to_string(),
        };
        match code {
            ResponseCode::Refused if operation == LOOKUP => refused(
                "REFUSED: the server does not answer for this zone (is it authoritative for it?)",
            ),
            ResponseCode::Refused => refused(
                "REFUSED: the server does not allow this key (or this address) to update the zone",
            ),
            ResponseCode::NotAuth => refused(
                "NOTAUTH: the server is not authoritative for the zone, or rejected the TSIG key",
            ),
            ResponseCode::NotZone => refused("NOTZONE: the name is not inside the zone"),
            ResponseCode::BADSIG | ResponseCode::BADKEY | ResponseCode::BADTIME => {
                ProviderError::Auth {
                    provider,
                    detail: format!(
                        "TSIG authentication failed ({code}): check the key name, secret and clock"
                    ),
                }
            }
            ResponseCode::NXRRSet
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::YXDomain => ProviderError::Conflict {
                provider,
                zone: zone.to_string(),
                detail: format!(
                    "{code}: a prerequisite of the {operation} failed, so someone else changed them"
                ),
            },
            ResponseCode::ServFail => ProviderError::Temporary {
                provider,
                detail: format!("SERVFAIL from {} on {operation}", self.config.server),
                retry_after: None,
            },
            other => self.protocol(format!("{operation} for zone {zone} failed: {other}")),
        }
    }

    async fn ask(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<DnsResponse, ProviderError> {
        let mut message = Message::query();
        message.add_query(Query::query(name.clone(), record_type));
        message.metadata.recursion_desired = false;
        dns::exchange(
            self.config.server,
            message,
            None,
            Transport::Tcp,
            self.config.timeout,
        )
        .await
        .map_err(|err| self.net_error(err))
    }

    /// Sends a signed UPDATE for `zone` and checks its answer.
    async fn update(
        &self,
        message: Message,
        zone: &str,
        operation: &str,
    ) -> Result<(), ProviderError> {
        let signer = self.config.tsig.as_ref().map(TsigKey::signer);
        let response = dns::exchange(
            self.config.server,
            message,
            signer,
            Transport::Tcp,
            self.config.timeout,
        )
        .await
        .map_err(|err| self.net_error(err))?;
        match response.response_code {
            ResponseCode::NoError => Ok(()),
            code => Err(self.rcode_error(code, operation, zone)),
        }
    }

    fn update_message(zone: &Name) -> Message {
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut query = Query::new();
        query
            .set_name(zone.clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        message.add_zone(query);
        message
    }

    fn txt_record(name: Name, ttl: u32, value: &TxtValue) -> Record {
        let strings = value.strings().iter().map(Vec::as_slice).collect();
        Record::from_rdata(name, ttl, RData::TXT(TXT::from_bytes(strings)))
    }
}

/// About how many bytes `record` (owned by `name`) takes in a message.
fn record_size(name: &str, record: &Record) -> usize {
    let data = match &record.data {
        RData::TXT(txt) => txt.txt_data.iter().map(|s| s.len() + 1).sum(),
        _ => 0,
    };
    name.len() + 2 + 10 + data
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    async fn find_zone(&self, fqdn: &str) -> Result<Zone, ProviderError> {
        let mut candidate = self.name(fqdn)?;
        loop {
            let response = self.ask(&candidate, RecordType::SOA).await?;
            let has_soa = response
                .answers
                .iter()
                .any(|record| record.record_type() == RecordType::SOA && record.name == candidate);
            if has_soa && response.authoritative {
                return Ok(Zone {
                    name: dns::plain(&candidate),
                    id: None,
                });
            }
            if candidate.num_labels() <= 1 {
                return Err(ProviderError::ZoneNotFound {
                    provider: self.config.name.clone(),
                    name: fqdn.to_string(),
                    detail: format!(
                        "{} is authoritative for no zone above it (set `zone:` on the domain if it hides its SOA)",
                        self.config.server
                    ),
                });
            }
            candidate = candidate.base_name();
        }
    }

    async fn list_txt(&self, zone: &Zone, fqdn: &str) -> Result<Vec<TxtValue>, ProviderError> {
        let name = self.name(fqdn)?;
        let response = self.ask(&name, RecordType::TXT).await?;
        match response.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {
                Ok(dns::txt_answers(&response, &name))
            }
            code => Err(self.rcode_error(code, LOOKUP, &zone.name)),
        }
    }

    /// Name by name as the default does, but [`PARALLEL_LOOKUPS`] queries in flight at once: a
    /// pass that starts 10,000 rotations checks 10,000 names.
    async fn list_txt_many(
        &self,
        zone: &Zone,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<TxtValue>>, ProviderError> {
        let lookups = names.iter().cloned().map(|name| async move {
            let values = self.list_txt(zone, &name).await?;
            Ok::<_, ProviderError>((name, values))
        });
        futures_util::stream::iter(lookups)
            .buffer_unordered(PARALLEL_LOOKUPS)
            .try_collect()
            .await
    }

    async fn apply(&self, zone: &Zone, changes: &[Change]) -> Result<(), ProviderError> {
        self.apply_if_unchanged(zone, changes, &Listing::new())
            .await
    }

    async fn apply_if_unchanged(
        &self,
        zone: &Zone,
        changes: &[Change],
        read: &Listing,
    ) -> Result<(), ProviderError> {
        let origin = self.name(&zone.name)?;
        // A name's changes stay together, after the prerequisites on its RRset, so that each
        // message's prerequisites are the state rotor read.
        let mut by_name: Vec<(&str, Vec<&Change>)> = Vec::new();
        for change in changes {
            let (Change::Add { name, .. } | Change::Delete { name, .. }) = change;
            match by_name.iter_mut().find(|(n, _)| n == name) {
                Some((_, group)) => group.push(change),
                None => by_name.push((name, vec![change])),
            }
        }
        // A DNS message holds at most 64 KiB: names go in as few UPDATE messages as fit, in
        // order (each message applies atomically).
        let mut message = Self::update_message(&origin);
        let mut size = 0;
        for (name, group) in by_name {
            let owner = self.name(name)?;
            let mut prerequisites = Vec::new();
            if let Some(values) = read.get(name) {
                if values.is_empty() {
                    // "RRset does not exist": class NONE, no data.
                    let mut absent =
                        Record::update0(owner.clone(), 0, RecordType::TXT).into_record_of_rdata();
                    absent.dns_class = DNSClass::NONE;
                    prerequisites.push(absent);
                } else {
                    // "RRset exists (value dependent)": exactly these values, TTL 0.
                    prerequisites.extend(
                        values
                            .iter()
                            .map(|value| Self::txt_record(owner.clone(), 0, value)),
                    );
                }
            }
            let mut updates = Vec::new();
            for change in group {
                updates.push(match change {
                    Change::Add { value, ttl, .. } => Self::txt_record(owner.clone(), *ttl, value),
                    Change::Delete { value, .. } => {
                        let mut record = Self::txt_record(owner.clone(), 0, value);
                        record.dns_class = DNSClass::NONE;
                        record
                    }
                });
            }
            let group_size = prerequisites
                .iter()
                .chain(&updates)
                .map(|record| record_size(name, record))
                .sum::<usize>();
            if size > 0 && size + group_size > MESSAGE_BUDGET {
                self.update(message, &zone.name, "update").await?;
                message = Self::update_message(&origin);
                size = 0;
            }
            for prerequisite in prerequisites {
                message.add_pre_requisite(prerequisite);
            }
            for update in updates {
                message.add_update(update);
            }
            size += group_size;
        }
        if size > 0 {
            self.update(message, &zone.name, "update").await?;
        }
        Ok(())
    }

    async fn check(&self, zone: &Zone) -> Result<(), ProviderError> {
        let origin = self.name(&zone.name)?;
        // A signed UPDATE whose only content is the prerequisite "the SOA exists" changes
        // nothing, but the server checks the TSIG signature and its update policy for the zone.
        let mut message = Self::update_message(&origin);
        let mut soa_exists = Record::update0(origin, 0, RecordType::SOA).into_record_of_rdata();
        soa_exists.dns_class = DNSClass::ANY;
        message.add_pre_requisite(soa_exists);
        self.update(message, &zone.name, "a signed no-op update")
            .await
    }
}
