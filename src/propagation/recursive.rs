//! Recursive lookups through the configured resolvers (or, when none is configured, the
//! system's, as hickory reads `/etc/resolv.conf`): a zone's nameservers and their addresses, and
//! the zone that holds a name. Uncached, so each pass sees what the resolvers say now.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use rotor_providers::dns;

/// A resolver that asks `resolvers` (the system's when empty), with `timeout` per query.
pub(super) struct Recursive {
    resolver: TokioResolver,
    /// Who is asked, for the errors.
    asked: String,
}

impl Recursive {
    pub(super) fn new(resolvers: &[SocketAddr], timeout: Duration) -> Result<Self, String> {
        let config = if resolvers.is_empty() {
            let (config, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|err| format!("cannot read the system's resolvers: {err}"))?;
            config
        } else {
            let servers = resolvers
                .iter()
                .map(|addr| {
                    let connection = |protocol| {
                        let mut connection = ConnectionConfig::new(protocol);
                        connection.port = addr.port();
                        connection
                    };
                    NameServerConfig::new(
                        addr.ip(),
                        true,
                        vec![
                            connection(ProtocolConfig::Udp),
                            connection(ProtocolConfig::Tcp),
                        ],
                    )
                })
                .collect();
            ResolverConfig::from_name_servers(servers)
        };
        if config.name_servers().is_empty() {
            return Err(
                "no resolver to look up nameservers: set propagation.resolvers or list authoritative servers".to_string(),
            );
        }
        let asked = if resolvers.is_empty() {
            "the system's resolvers".to_string()
        } else {
            resolvers
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        // Names are asked as given (fully qualified), never with a search domain appended.
        options.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|err| format!("cannot set up the resolver: {err}"))?;
        Ok(Self { resolver, asked })
    }

    /// The TXT records at `name`, each with its strings joined (none when it has none or does
    /// not exist).
    pub(super) async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(self
            .lookup(name, RecordType::TXT)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The records of `record_type` at `name` (none when it has none or does not exist).
    async fn lookup(&self, name: &str, record_type: RecordType) -> Result<Vec<RData>, String> {
        let name = dns::fqdn(name)?;
        match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .map(|record| record.data.clone())
                .collect()),
            Err(err) if err.is_no_records_found() => Ok(Vec::new()),
            Err(err) => Err(format!("{}: {err}", self.asked)),
        }
    }

    /// The zone that holds `name`: the SOA of its parent and up (never `name` itself: asking
    /// about a name before it exists would have the resolver cache its absence); `None` when no
    /// zone above it exists.
    pub(super) async fn enclosing_zone(&self, name: &str) -> Result<Option<String>, String> {
        let mut current = dns::fqdn(name)?;
        // A level the resolver cannot answer for (a SERVFAIL: one of the zone's nameservers is
        // unreachable, say) does not end the walk: the zone may still be found above it. If
        // none is, that first failure is the answer.
        let mut failed = None;
        while !current.is_root() {
            current = current.base_name();
            match self.resolver.lookup(current.clone(), RecordType::SOA).await {
                Ok(lookup) => {
                    let soa = lookup
                        .answers()
                        .iter()
                        .chain(lookup.authorities())
                        .find(|record| matches!(record.data, RData::SOA(_)));
                    if let Some(record) = soa {
                        return Ok(Some(dns::plain(&record.name)));
                    }
                }
                // A name inside a zone answers with no SOA of its own and the zone's SOA in
                // the authority section.
                Err(err) if err.is_no_records_found() => {
                    if let Some(soa) = err.into_soa() {
                        return Ok(Some(dns::plain(&soa.name)));
                    }
                }
                Err(err) => {
                    failed.get_or_insert_with(|| format!("{}: {err}", self.asked));
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(None),
        }
    }

    /// The addresses of `zone`'s nameservers (each on port 53). Every nameserver must have one:
    /// "every authoritative server" means every one, and a server that cannot be asked cannot
    /// say it serves the record.
    pub(super) async fn nameservers(&self, zone: &str) -> Result<Vec<SocketAddr>, String> {
        let mut addresses = Vec::new();
        for ns in self.lookup(zone, RecordType::NS).await? {
            let RData::NS(ns) = ns else { continue };
            let host = dns::plain(&ns.0);
            let before = addresses.len();
            // A name the resolvers cannot resolve (SERVFAIL) has no address rotor can ask.
            let mut why = String::new();
            for record_type in [RecordType::A, RecordType::AAAA] {
                let found = self.lookup(&host, record_type).await.unwrap_or_else(|err| {
                    why = format!(": {err}");
                    Vec::new()
                });
                for data in found {
                    let ip = match data {
                        RData::A(a) => a.0.into(),
                        RData::AAAA(aaaa) => aaaa.0.into(),
                        _ => continue,
                    };
                    addresses.push(SocketAddr::new(ip, 53));
                }
            }
            if addresses.len() == before {
                return Err(format!(
                    "nameserver {host} of {zone} has no address ({} returned no A or AAAA record{why}): cannot ask it",
                    self.asked
                ));
            }
        }
        if addresses.is_empty() {
            return Err(format!(
                "{} returned no nameserver addresses for {zone}",
                self.asked
            ));
        }
        Ok(addresses)
    }
}
