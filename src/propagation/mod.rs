//! Is the record visible? Every authoritative nameserver (recursion off) and every configured
//! resolver is asked at once; the check passes only when each returns exactly the key.
//! Also: where does a selector's name lead? A CNAME (or a DNAME above it) delegates the record to
//! another zone, and rotor writes at the end of that chain.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rotor_providers::{async_trait, dns};
use rotor_state::{Check, ServerCheck};
use tokio::task::JoinSet;

use crate::config::{Authoritative, Propagation};
use crate::keys::DkimRecord;
use recursive::Recursive;

mod recursive;

const AUTHORITATIVE: &str = "authoritative";
const RESOLVER: &str = "resolver";

/// How many aliases rotor follows before calling a chain a loop.
const MAX_CHAIN: usize = 8;

/// Where a record is asked for: the selector's name (what verifiers ask, through resolvers) and
/// where it is written (what the authoritative servers of `zone` hold).
#[derive(Clone, Copy, Debug)]
pub struct RecordNames<'a> {
    /// `<selector>._domainkey.<domain>`.
    pub selector: &'a str,
    /// The end of the selector name's alias chain (the same name when there is none).
    pub record: &'a str,
    /// The zone that holds `record`.
    pub zone: &'a str,
}

/// Decides whether a record is visible and where a selector's name leads (the engine's one
/// dependency on DNS queries, so its tests can script the answers).
#[async_trait]
pub trait Visibility: Send + Sync {
    /// Asks every relevant server for the record and compares with `expected`.
    async fn check(
        &self,
        names: RecordNames<'_>,
        expected: &DkimRecord,
        settings: &Propagation,
        now: u64,
    ) -> Check;

    /// The end of the CNAME chain at `name` (a DNAME above it counts: servers synthesize the
    /// CNAME), asked of the authoritative servers; `None` when `name` is not an alias.
    async fn alias_target(
        &self,
        name: &str,
        settings: &Propagation,
    ) -> Result<Option<String>, String>;
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
        names: RecordNames<'_>,
        expected: &DkimRecord,
        settings: &Propagation,
        now: u64,
    ) -> Check {
        check(names, expected, settings, self.timeout, now).await
    }

    async fn alias_target(
        &self,
        name: &str,
        settings: &Propagation,
    ) -> Result<Option<String>, String> {
        let mut current = name.to_string();
        for _ in 0..MAX_CHAIN {
            match cname(&current, settings, self.timeout).await {
                Ok(Some(next)) => current = next,
                Ok(None) => return Ok((current != name).then_some(current)),
                // Beyond the first alias, servers may not serve the target's zone: the chain
                // ends where they can tell (a CNAME further on makes the record invisible, so
                // propagation would not pass).
                Err(err) if current == name => return Err(err),
                Err(err) => {
                    tracing::debug!("{name}: following the alias stops at {current}: {err}");
                    return Ok(Some(current));
                }
            }
        }
        Err(format!(
            "{name}: more than {MAX_CHAIN} aliases in a row (a CNAME loop?)"
        ))
    }
}

/// Asks every server for the TXT record and compares it with `expected`: the authoritative
/// servers for the record's own name, the resolvers for the selector's name (following aliases,
/// as a verifier does).
async fn check(
    names: RecordNames<'_>,
    expected: &DkimRecord,
    settings: &Propagation,
    timeout: Duration,
    now: u64,
) -> Check {
    let RecordNames {
        selector,
        record,
        zone,
    } = names;
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
    let mut answers = ask_all(&servers, record, expected, timeout).await;
    let resolvers: Vec<_> = resolvers.iter().map(|addr| (*addr, RESOLVER)).collect();
    // A resolver asked before the record reached every authoritative server would cache its
    // absence (for the zone's negative TTL): resolvers are asked only once they all have it.
    if failures.is_empty() && answers.iter().all(|answer| answer.ok) {
        answers.extend(ask_all(&resolvers, selector, expected, timeout).await);
    } else {
        answers.extend(resolvers.iter().map(|(server, role)| ServerCheck {
            server: server.to_string(),
            role: role.to_string(),
            ok: false,
            detail: "not asked until every authoritative server has the record".into(),
        }));
    }
    failures.extend(answers);
    Check {
        at: now,
        servers: failures,
    }
}

/// The addresses of `zone`'s nameservers, looked up through `resolvers` (or the system's).
async fn nameservers(
    zone: &str,
    resolvers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    Recursive::new(resolvers, timeout)?.nameservers(zone).await
}

/// The TXT records at `name` (strings joined), through `resolvers` (or the system's).
pub async fn txt_lookup(
    name: &str,
    resolvers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<String>, String> {
    Recursive::new(resolvers, timeout)?.txt(name).await
}

/// Asks each of `servers` at once for the record at `fqdn`; the answers in their order.
async fn ask_all(
    servers: &[(SocketAddr, &'static str)],
    fqdn: &str,
    expected: &DkimRecord,
    timeout: Duration,
) -> Vec<ServerCheck> {
    let mut tasks = JoinSet::new();
    for (index, &(server, role)) in servers.iter().enumerate() {
        let (fqdn, expected) = (fqdn.to_string(), expected.clone());
        tasks.spawn(async move { (index, ask(server, role, &fqdn, &expected, timeout).await) });
    }
    let mut answers: Vec<(usize, ServerCheck)> = tasks.join_all().await;
    answers.sort_by_key(|(index, _)| *index);
    answers.into_iter().map(|(_, answer)| answer).collect()
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
    let records: Vec<DkimRecord> = dns::txt_answers(&response, &dns::chain_end(&response, &name))
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

/// The target of the CNAME at `name`, if any, as the authoritative servers for `name` say.
async fn cname(
    name: &str,
    settings: &Propagation,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let resolvers: Vec<SocketAddr> = settings.resolvers.iter().map(|s| s.0).collect();
    let (servers, recursion) = match &settings.authoritative {
        Authoritative::List(list) => (list.iter().map(|s| s.0).collect(), false),
        Authoritative::Auto => {
            let recursive = Recursive::new(&resolvers, timeout)?;
            match recursive.enclosing_zone(name).await? {
                Some(zone) => (recursive.nameservers(&zone).await?, false),
                // No zone holds the name: nothing there, so no alias either.
                None => return Ok(None),
            }
        }
        // Nothing is checked at the authoritative servers: ask the configured resolvers, and
        // nobody if there are none (the write itself fails at an alias).
        Authoritative::None if resolvers.is_empty() => return Ok(None),
        Authoritative::None => (resolvers, true),
    };
    let query = dns::fqdn(name)?;
    let mut last = format!("no server to ask whether {name} is an alias");
    for server in servers {
        let response = match dns::query(server, &query, RecordType::CNAME, recursion, timeout).await
        {
            Ok(response) => response,
            Err(err) => {
                last = format!("{server}: no answer about {name}: {err}");
                continue;
            }
        };
        match response.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => {
                last = format!("{server} answered {code} about {name}");
                continue;
            }
        }
        if !recursion && !response.authoritative {
            last = format!(
                "{server} is not authoritative for {name} (a delegated zone? list its servers in propagation.authoritative)"
            );
            continue;
        }
        let end = dns::chain_end(&response, &query);
        return Ok((end != query).then(|| dns::plain(&end)));
    }
    Err(last)
}
