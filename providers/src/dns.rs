//! A minimal DNS client over hickory: one question to one server, no cache, used by the RFC 2136
//! adapter and by rotor's propagation checks alike.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsMultiplexer;
use hickory_net::{DnsHandle, NetError};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Message, Query};
use hickory_proto::rr::TSigner;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::TxtValue;

/// Which transport a message travels over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP, falling back to TCP when the answer is truncated.
    Udp,
    /// TCP only (updates, large answers).
    Tcp,
}

/// Sends `message` to `server` and returns its answer (whatever its response code).
pub async fn exchange(
    server: SocketAddr,
    message: Message,
    signer: Option<TSigner>,
    transport: Transport,
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    let provider = TokioRuntimeProvider::default();
    let request = DnsRequest::new(message, DnsRequestOptions::default());
    if transport == Transport::Udp {
        let stream = UdpClientStream::builder(server, provider.clone())
            .with_timeout(Some(timeout))
            .with_signer(signer.clone())
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let task = tokio::spawn(background);
        let answer = first(client.send(request.clone())).await;
        task.abort();
        match answer {
            Ok(response) if !response.truncation => return Ok(response),
            Ok(_) => {}
            Err(err) => return Err(err),
        }
    }
    let (connect, handle) = TcpClientStream::new(server, None, Some(timeout), provider);
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| NetError::Timeout)??;
    let mut multiplexer = DnsMultiplexer::new(stream, handle).with_timeout(timeout);
    if let Some(signer) = signer {
        multiplexer = multiplexer.with_signer(signer);
    }
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(multiplexer);
    let task = tokio::spawn(background);
    let answer = first(client.send(request)).await;
    task.abort();
    answer
}

async fn first<S>(mut responses: S) -> Result<DnsResponse, NetError>
where
    S: futures_util::Stream<Item = Result<DnsResponse, NetError>> + Unpin,
{
    responses.next().await.unwrap_or(Err(NetError::Timeout))
}

/// Asks `server` one question; `recursion` sets the RD bit (off for authoritative servers).
pub async fn query(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    recursion: bool,
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    let mut message = Message::query();
    message.add_query(Query::query(name.clone(), record_type));
    message.metadata.recursion_desired = recursion;
    exchange(server, message, None, Transport::Udp, timeout).await
}

/// The TXT values in `response`'s answer section that belong to `name`.
pub fn txt_answers(response: &DnsResponse, name: &Name) -> Vec<TxtValue> {
    response
        .answers
        .iter()
        .filter(|record| record.name.eq_case(name) || record.name == *name)
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(TxtValue::from_strings(
                txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// The name `name` leads to through the CNAME records of `response`'s answer section (a DNAME's
/// synthesized CNAME included): `name` itself when it is not an alias there.
pub fn chain_end(response: &DnsResponse, name: &Name) -> Name {
    let mut current = name.clone();
    for _ in 0..response.answers.len() {
        let next = response
            .answers
            .iter()
            .find_map(|record| match &record.data {
                RData::CNAME(target) if record.name.eq_case(&current) || record.name == current => {
                    Some(target.0.clone())
                }
                _ => None,
            });
        match next {
            Some(next) => current = next,
            None => break,
        }
    }
    current
}

/// Parses a fully qualified name given without the trailing dot.
pub fn fqdn(name: &str) -> Result<Name, String> {
    let mut parsed =
        Name::from_ascii(name).map_err(|err| format!("invalid DNS name {name:?}: {err}"))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// Whether `name` is `zone` or below it (both as rotor writes names: lowercase, no final dot).
pub fn within(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

/// A name as rotor writes it: lowercase, without the trailing dot.
pub fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_within_a_zone() {
        assert!(within("example.com", "example.com"));
        assert!(within("sel._domainkey.example.com", "example.com"));
        assert!(!within("badexample.com", "example.com"));
        assert!(!within("example.org", "example.com"));
    }
}
