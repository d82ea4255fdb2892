//! Is the record visible? Every authoritative nameserver (recursion off) and every configured
//! resolver is asked at once; the check passes only when each returns exactly the key.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use rotor_providers::{async_trait, dns};
use rotor_state::{Check, ServerCheck};
use tokio::task::JoinSet;

use crate::config::{Authoritative, Propagation};
use crate::keys::DkimRecord;

const AUTHORITATIVE: &str = "authoritative";
const RESOLVER: &str = "resolver";

/// Decides whether a record is visible (the engine's one dependency on DNS queries, so its
/// tests can script the answers).
#[async_trait]
pub trait Visibility: Send + Sync {
    /// Asks every relevant server for the record at `fqdn` (in `zone`) and compares with `expected`.
    async fn check(
        &self,
        fqdn: &str,
        zone: &str,
        expected: &DkimRecord,
        settings: &Propagation,
        now: u64,
    ) -> Check;
}

/// The real check: authoritative nameservers and resolvers, over the network.
pub struct DnsVisibility {
    /// How long to wait for each server.
    pub timeout: Duration,
}

#[async_trait]
impl Visibility for DnsVisibility {
    async fn check(
        &self,
        fqdn: &str,
        zone: &str,
        expected: &DkimRecord,
        settings: &Propagation,
        now: u64,
    ) -> Check {
        check(fqdn, zone, expected, settings, self.timeout, now).await
    }
}

/// Asks every server for the TXT record at `fqdn` and compares it with `expected`.
async fn check(
    fqdn: &str,
    zone: &str,
    expected: &DkimRecord,
    settings: &Propagation,
    timeout: Duration,
    now: u64,
) -> Check {
    let resolvers: Vec<SocketAddr> = settings.resolvers.iter().map(|s| s.0).collect();
    let mut servers: Vec<(SocketAddr, &'static str)> = Vec::new();
    let mut failures = Vec::new();
    match &settings.authoritative {
        Authoritative::List(list) => servers.extend(list.iter().map(|s| (s.0, AUTHORITATIVE))),
        Authoritative::None => {}
        Authoritative::Auto => match nameservers(zone, &resolvers, timeout).await {
            Ok(found) => servers.extend(found.into_iter().map(|addr| (addr, AUTHORITATIVE))),
            Err(detail) => failures.push(ServerCheck {
                server: format!("NS of {zone}"),
                role: AUTHORITATIVE.into(),
                ok: false,
                detail,
            }),
        },
    }
    servers.extend(resolvers.iter().map(|addr| (*addr, RESOLVER)));

    let mut tasks = JoinSet::new();
    for (index, (server, role)) in servers.into_iter().enumerate() {
        let (fqdn, expected) = (fqdn.to_string(), expected.clone());
        tasks.spawn(async move { (index, ask(server, role, &fqdn, &expected, timeout).await) });
    }
    let mut answers: Vec<(usize, ServerCheck)> = tasks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    failures.extend(answers.into_iter().map(|(_, answer)| answer));
    Check {
        at: now,
        servers: failures,
    }
}

async fn ask(
    server: SocketAddr,
    role: &'static str,
    fqdn: &str,
    expected: &DkimRecord,
    timeout: Duration,
) -> ServerCheck {
    let (ok, detail) = match answer(server, role, fqdn, expected, timeout).await {
        Ok(()) => (true, "record matches".to_string()),
        Err(detail) => (false, detail),
    };
    ServerCheck {
        server: server.to_string(),
        role: role.to_string(),
        ok,
        detail,
    }
}

async fn answer(
    server: SocketAddr,
    role: &str,
    fqdn: &str,
    expected: &DkimRecord,
    timeout: Duration,
) -> Result<(), String> {
    let name = dns::fqdn(fqdn)?;
    let response = dns::query(server, &name, RecordType::TXT, role == RESOLVER, timeout)
        .await
        .map_err(|err| format!("no answer: {err}"))?;
    match response.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err("NXDOMAIN".into()),
        code => return Err(format!("answered {code}")),
    }
    if role == AUTHORITATIVE && !response.authoritative {
        return Err("not authoritative for the zone".into());
    }
    let records: Vec<DkimRecord> = dns::txt_answers(&response, &name)
        .iter()
        .filter_map(|value| DkimRecord::parse(&value.joined()))
        .collect();
    match records.as_slice() {
        [] => Err("no DKIM record".into()),
        [one] if one.same_key(expected) => Ok(()),
        [_] => Err("a different key".into()),
        _ => Err(format!(
            "{} DKIM records at one selector (undefined for verifiers)",
            records.len()
        )),
    }
}

/// The addresses of `zone`'s nameservers, through `resolvers` (or the system's).
async fn nameservers(
    zone: &str,
    resolvers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    let system;
    let resolvers = if resolvers.is_empty() {
        system = system_resolvers();
        &system
    } else {
        resolvers
    };
    let resolver = *resolvers.first().ok_or("no resolver to look up the zone's NS records: set propagation.resolvers or list authoritative servers")?;
    let lookup = |name: String, record_type: RecordType| async move {
        let name = dns::fqdn(&name)?;
        let response = dns::query(resolver, &name, record_type, true, timeout)
            .await
            .map_err(|err| format!("{resolver}: {err}"))?;
        Ok::<_, String>(
            response
                .answers
                .iter()
                .map(|record| record.data.clone())
                .collect::<Vec<RData>>(),
        )
    };
    let mut addresses = Vec::new();
    for ns in lookup(zone.to_string(), RecordType::NS).await? {
        let RData::NS(ns) = ns else { continue };
        let host = dns::plain(&ns.0);
        for record_type in [RecordType::A, RecordType::AAAA] {
            for data in lookup(host.clone(), record_type).await? {
                match data {
                    RData::A(a) => addresses.push(SocketAddr::new(IpAddr::V4(a.0), 53)),
                    RData::AAAA(aaaa) => addresses.push(SocketAddr::new(IpAddr::V6(aaaa.0), 53)),
                    _ => {}
                }
            }
        }
    }
    if addresses.is_empty() {
        return Err(format!(
            "{resolver} returned no nameserver addresses for {zone}"
        ));
    }
    Ok(addresses)
}

fn system_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|addr| addr.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
