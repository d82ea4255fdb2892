//! Proof of a switch: a signer's probe message, verified here with a real DKIM verifier
//! (`mail-auth`) against the records rotor confirmed on the authoritative servers, never through
//! a resolver: the verifier's TXT cache answers every name itself (the expected records, and
//! "no such name" for any other), so no query leaves rotor.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::Instant;

use mail_auth::common::crypto::CryptoError;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::DkimError;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DnsError, Error, MessageAuthenticator, Parameters,
    ResolverCache, Txt,
};

/// A key the probe must be signed with: its selector and the record rotor confirmed.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The selector (`s=`).
    pub selector: &'a str,
    /// The record, its strings joined (`v=DKIM1; k=rsa; p=…`).
    pub record: &'a str,
}

/// Why a probe did not prove the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The message came back without a signature of the domain.
    Unsigned,
    /// Signed for the domain, but not with the expected selector: the signer still uses another
    /// key (its reload did nothing, or its tables were lost).
    WrongSelector {
        /// The selector expected.
        expected: String,
        /// The selectors it signed with.
        found: Vec<String>,
    },
    /// The body hash does not match: the message was changed after it was signed.
    BodyHash {
        /// The selector of the signature.
        selector: String,
    },
    /// The signature does not verify against the published record: the signer signs with a
    /// private key that is not the one published.
    KeyMismatch {
        /// The selector of the signature.
        selector: String,
    },
    /// Anything else the verifier said (a revoked key, an unsupported algorithm…).
    Invalid {
        /// The selector of the signature.
        selector: String,
        /// The verifier's verdict.
        detail: String,
    },
    /// The message the signer returned is not a mail message.
    Unparsable,
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => write!(f, "the probe came back without a DKIM signature"),
            Self::WrongSelector { expected, found } => write!(
                f,
                "the probe was signed with s={}, not s={expected}: the signer still uses the previous key",
                found.join(", s=")
            ),
            Self::BodyHash { selector } => write!(
                f,
                "the probe's signature s={selector} has a body hash that does not match (the message was changed after signing)"
            ),
            Self::KeyMismatch { selector } => write!(
                f,
                "the probe's signature s={selector} does not verify against the published record: the signer's private key is not the published one"
            ),
            Self::Invalid { selector, detail } => {
                write!(
                    f,
                    "the probe's signature s={selector} is not valid: {detail}"
                )
            }
            Self::Unparsable => write!(f, "the probe came back as something that is not a message"),
        }
    }
}

/// Checks that `message` carries, for every key of `expected`, a valid signature of `domain`
/// with its selector, verified against its record.
pub async fn verify(
    message: &[u8],
    domain: &str,
    expected: &[Expected<'_>],
) -> Result<(), ProbeFailure> {
    let parsed = AuthenticatedMessage::parse(message).ok_or(ProbeFailure::Unparsable)?;
    let domain = domain.trim_end_matches('.');
    let ours = |d: &str| d.trim_end_matches('.').eq_ignore_ascii_case(domain);
    let selectors: Vec<String> = parsed
        .dkim_headers
        .iter()
        .filter(|header| ours(&header.header.d))
        .map(|header| header.header.s.clone())
        .collect();
    if selectors.is_empty() {
        return Err(ProbeFailure::Unsigned);
    }
    for key in expected {
        if !selectors
            .iter()
            .any(|s| s.eq_ignore_ascii_case(key.selector))
        {
            return Err(ProbeFailure::WrongSelector {
                expected: key.selector.to_string(),
                found: selectors.clone(),
            });
        }
    }
    let world = ClosedWorld::of(domain, expected);
    // A resolver with no servers: the closed world answers every name, so it is never asked.
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        ResolverOpts::default(),
    )
    .map_err(|err| ProbeFailure::Invalid {
        selector: String::new(),
        detail: format!("the verifier cannot start: {err}"),
    })?;
    let outputs = authenticator
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(&world))
        .await;
    for key in expected {
        let results: Vec<&DkimResult> = outputs
            .iter()
            .filter(|output| {
                output.signature().is_some_and(|signature| {
                    ours(&signature.d) && signature.s.eq_ignore_ascii_case(key.selector)
                })
            })
            .map(|output| output.result())
            .collect();
        // One valid signature with the selector is enough (a signer may sign twice).
        if results
            .iter()
            .any(|result| matches!(result, DkimResult::Pass))
        {
            continue;
        }
        let selector = key.selector.to_string();
        return Err(match results.first() {
            Some(DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch))) => {
                ProbeFailure::BodyHash { selector }
            }
            Some(DkimResult::Fail(Error::Crypto(CryptoError::FailedVerification))) => {
                ProbeFailure::KeyMismatch { selector }
            }
            Some(other) => ProbeFailure::Invalid {
                selector,
                detail: verdict(other),
            },
            None => ProbeFailure::Invalid {
                selector,
                detail: "the verifier found no signature to check".into(),
            },
        });
    }
    Ok(())
}

/// The verifier's verdict, in words.
fn verdict(result: &DkimResult) -> String {
    match result {
        DkimResult::Pass => "pass".into(),
        DkimResult::Neutral(err) => format!("neutral: {err}"),
        DkimResult::Fail(err) => format!("fail: {err}"),
        DkimResult::PermError(err) => format!("permanent error: {err}"),
        DkimResult::TempError(err) => format!("temporary error: {err}"),
        DkimResult::None => "no verdict".into(),
    }
}

/// The verifier's TXT cache: the expected records by name, every other name absent.
struct ClosedWorld(HashMap<Box<str>, Txt>);

impl ClosedWorld {
    fn of(domain: &str, expected: &[Expected<'_>]) -> Self {
        let records = expected.iter().map(|key| {
            let name = format!("{}._domainkey.{domain}.", key.selector).to_ascii_lowercase();
            let txt = match DomainKey::parse(key.record.as_bytes()) {
                Ok(key) => key.into(),
                Err(err) => Txt::Error(err),
            };
            (name.into_boxed_str(), txt)
        });
        Self(records.collect())
    }
}

impl ResolverCache<Box<str>, Txt> for ClosedWorld {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(
            self.0
                .get(name)
                .cloned()
                .unwrap_or(Txt::Error(Error::Dns(DnsError::RecordNotFound(
                    ResponseCode::NXDomain,
                )))),
        )
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

#[cfg(test)]
mod tests;
