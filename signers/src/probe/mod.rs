//! Probes: a signer asked to sign a test message the way it signs real mail, so that rotor can
//! check the signature itself (the binary verifies it against the record it confirmed on the
//! authoritative servers). Each adapter says how it is asked ([`crate::Signer::probe`]):
//! OpenDKIM over its milter socket ([`milter`]), rspamd over its HTTP protocol ([`rspamd`]),
//! any other signer through a command that reads the message on stdin and prints it signed.

pub mod milter;
pub mod rspamd;
mod settings;

use std::time::Duration;

use crate::{Result, SignerError, command};

pub use milter::MilterSocket;
pub use settings::ProbeSettings;

/// The largest signed message a probe command may print.
const MAX_OUTPUT: usize = 1 << 20;

/// How a signer is asked to sign a probe message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A milter (OpenDKIM) at its socket, spoken to as an MTA on the same host would.
    Milter(MilterSocket),
    /// rspamd's `/checkv2` on its normal worker (e.g. `http://127.0.0.1:11333`), as mail from an
    /// authenticated sender.
    Rspamd(String),
    /// A command line (run through `sh -c`) that reads the message on stdin and prints it signed;
    /// `ROTOR_PROBE_DOMAIN` and `ROTOR_PROBE_SENDER` are in its environment.
    Command(String),
}

/// A probe message from `sender` (an address at the domain being probed) to `recipient`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeMessage {
    /// The domain whose signature is wanted.
    pub domain: String,
    /// The envelope sender and `From:` address.
    pub sender: String,
    /// The envelope recipient and `To:` address.
    pub recipient: String,
    /// The headers (name, value without the leading space), in order.
    pub headers: Vec<(String, String)>,
    /// The body, with CRLF line ends.
    pub body: String,
}

impl ProbeMessage {
    /// A probe for `domain`, marked with `id` (which goes in its `Message-ID` and `Subject`),
    /// dated `date` (an RFC 5322 date).
    pub fn new(domain: &str, id: &str, date: &str) -> Self {
        let sender = format!("rotor-probe@{domain}");
        let recipient = format!("rotor-probe@{domain}");
        let headers = vec![
            ("From".to_string(), format!("<{sender}>")),
            ("To".to_string(), format!("<{recipient}>")),
            ("Subject".to_string(), format!("rotor signing probe {id}")),
            ("Date".to_string(), date.to_string()),
            ("Message-ID".to_string(), format!("<{id}@{domain}>")),
        ];
        Self {
            domain: domain.to_string(),
            sender,
            recipient,
            headers,
            // No trailing blank line: some verifiers canonicalize an empty last line differently.
            body: "This message checks that the mail signer signs with the key rotor gave it.\r\n"
                .to_string(),
        }
    }

    /// The whole message, as sent (CRLF line ends).
    pub fn to_bytes(&self) -> Vec<u8> {
        with_headers(&[], self)
    }
}

/// `message` with `added` headers on top (values folded with bare LF or CRLF are given CRLF).
fn with_headers(added: &[(String, String)], message: &ProbeMessage) -> Vec<u8> {
    let mut text = String::new();
    for (name, value) in added.iter().chain(&message.headers) {
        let value = value.replace("\r\n", "\n").replace('\n', "\r\n");
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&message.body);
    text.into_bytes()
}

impl Probe {
    /// Has the signer sign `message` and returns the message as it signed it (unchanged if it
    /// did not sign), within `timeout`.
    pub async fn sign(&self, message: &ProbeMessage, timeout: Duration) -> Result<Vec<u8>> {
        match self {
            Self::Milter(socket) => {
                let added = milter::sign(socket, message, timeout).await?;
                Ok(with_headers(&added, message))
            }
            Self::Rspamd(url) => {
                let added = rspamd::sign(url, message, timeout).await?;
                Ok(with_headers(&added, message))
            }
            Self::Command(line) => {
                let line = line.clone();
                let input = message.to_bytes();
                let env = [
                    ("ROTOR_PROBE_DOMAIN", message.domain.clone()),
                    ("ROTOR_PROBE_SENDER", message.sender.clone()),
                ];
                tokio::task::spawn_blocking(move || {
                    command::run_capturing("probe", &line, timeout, &input, &env, MAX_OUTPUT)
                })
                .await
                .map_err(|err| SignerError::Probe {
                    message: format!("probe: {err}"),
                    transient: true,
                })?
            }
        }
    }

    /// How the probe is sent, for messages (never a command line, which may carry secrets).
    pub fn describe(&self) -> String {
        match self {
            Self::Milter(socket) => format!("the milter at {socket}"),
            Self::Rspamd(url) => format!("rspamd at {url}"),
            Self::Command(_) => "the probe command".to_string(),
        }
    }
}
