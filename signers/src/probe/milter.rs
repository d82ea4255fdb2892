//! The MTA side of the milter protocol (version 6), as much as a probe needs: one message sent
//! to a milter (OpenDKIM) as an MTA would, and the headers it adds at the end of the message
//! collected. Every packet is a big-endian `u32` length, a command byte and its data; strings are
//! NUL-terminated.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ProbeMessage;
use crate::{Result, SignerError};

/// The protocol version rotor speaks.
const VERSION: u32 = 6;
/// Actions rotor lets the milter take: add and change headers (what a DKIM signer does).
const ACTIONS: u32 = 0x01 | 0x10;
/// The largest packet rotor accepts from a milter.
const MAX_PACKET: usize = 1 << 20;
/// The largest body chunk the protocol carries.
const CHUNK: usize = 65_535;

/// Where a milter listens, as OpenDKIM's `Socket` setting writes it: `inet:PORT@HOST`,
/// `inet6:PORT@HOST`, or `unix:/path` (also `local:/path`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MilterSocket {
    /// A TCP port on a host (a name or an address).
    Inet {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// A unix socket.
    Unix(PathBuf),
}

impl FromStr for MilterSocket {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a milter socket: write `inet:PORT@HOST` or `unix:/path/to/socket`, as in OpenDKIM's Socket setting"
            )
        };
        let (scheme, rest) = text.split_once(':').ok_or_else(bad)?;
        match scheme {
            "inet" | "inet6" => {
                let (port, host) = rest.split_once('@').ok_or_else(bad)?;
                let port = port.parse().map_err(|_| bad())?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() || port == 0 {
                    return Err(bad());
                }
                Ok(Self::Inet {
                    host: host.to_string(),
                    port,
                })
            }
            "unix" | "local" if rest.starts_with('/') => Ok(Self::Unix(PathBuf::from(rest))),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for MilterSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet { host, port } => write!(f, "inet:{port}@{host}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

rotor_common::deserialize_from_str!(MilterSocket);

/// Sends `message` through the milter at `socket` and returns the headers it added (name and
/// value, in the order they would stand at the top of the message), within `timeout`.
pub async fn sign(
    socket: &MilterSocket,
    message: &ProbeMessage,
    timeout: Duration,
) -> Result<Vec<(String, String)>> {
    let talk = async {
        match socket {
            MilterSocket::Inet { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|err| unreachable(socket, err))?;
                converse(stream, message).await
            }
            MilterSocket::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|err| unreachable(socket, err))?;
                converse(stream, message).await
            }
        }
    };
    tokio::time::timeout(timeout, talk)
        .await
        .map_err(|_| SignerError::Probe {
            message: format!(
                "the milter at {socket} did not answer within {}",
                humantime::format_duration(timeout)
            ),
            transient: true,
        })?
}

fn unreachable(socket: &MilterSocket, err: std::io::Error) -> SignerError {
    SignerError::Probe {
        message: format!("cannot connect to the milter at {socket}: {err}"),
        transient: true,
    }
}

/// What the milter said to one command.
enum Reply {
    /// Go on (`c`), or skip the rest of this stage (`s`).
    Continue,
    /// Done with this message, without changing it (`a`).
    Accept,
}

/// The conversation: option negotiation, then the message, stage by stage, then quit.
async fn converse<S>(stream: S, message: &ProbeMessage) -> Result<Vec<(String, String)>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut milter = Milter { stream };
    let mut negotiate = Vec::new();
    for value in [VERSION, ACTIONS, 0] {
        negotiate.extend(value.to_be_bytes());
    }
    milter.send(b'O', &negotiate).await?;
    let (command, data) = milter.receive().await?;
    if command != b'O' || data.len() < 12 {
        return Err(protocol(format!(
            "answered the option negotiation with {:?}",
            char::from(command)
        )));
    }
    let wanted = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    // The steps the milter asked to skip (SMFIP_NOHELO, …), so it is not sent what it refused.
    let skips = |flag: u32| wanted & flag != 0;
    let mut steps: Vec<(u8, Vec<u8>, u32)> = Vec::new();
    let mut connect = strings(&["localhost"]);
    connect.push(b'4');
    connect.extend(0u16.to_be_bytes());
    connect.extend(strings(&["127.0.0.1"]));
    steps.push((b'C', connect, 0x1));
    steps.push((b'H', strings(&["localhost"]), 0x2));
    steps.push((b'M', strings(&[&format!("<{}>", message.sender)]), 0x4));
    steps.push((b'R', strings(&[&format!("<{}>", message.recipient)]), 0x8));
    steps.push((b'T', Vec::new(), 0x200));
    for (name, value) in &message.headers {
        steps.push((b'L', strings(&[name, value]), 0x20));
    }
    steps.push((b'N', Vec::new(), 0x40));
    for chunk in message.body.as_bytes().chunks(CHUNK) {
        steps.push((b'B', chunk.to_vec(), 0x10));
    }
    // Flags that say the milter sends no reply to a step (SMFIP_NR_*), by step.
    let no_reply = |command: u8| match command {
        b'C' => skips(0x1000),
        b'H' => skips(0x2000),
        b'M' => skips(0x4000),
        b'R' => skips(0x8000),
        b'T' => skips(0x10000),
        b'L' => skips(0x80),
        b'N' => skips(0x40000),
        b'B' => skips(0x80000),
        _ => false,
    };
    for (command, data, skip) in steps {
        if skips(skip) {
            continue;
        }
        milter.send(command, &data).await?;
        if no_reply(command) {
            continue;
        }
        match milter.reply(command).await? {
            Reply::Continue => {}
            // Not interested in this message (it will not sign it).
            Reply::Accept => {
                milter.quit().await;
                return Ok(Vec::new());
            }
        }
    }
    milter.send(b'E', &[]).await?;
    let mut added: Vec<(u32, String, String)> = Vec::new();
    loop {
        let (command, data) = milter.receive().await?;
        match command {
            // ADDHEADER: at the end of the headers (listed after those inserted).
            b'h' => {
                let [name, value] = fields(&data)?;
                added.push((u32::MAX, name, value));
            }
            // INSHEADER: at an index among the headers (0 = the top).
            b'i' if data.len() >= 4 => {
                let index = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let [name, value] = fields(&data[4..])?;
                added.push((index, name, value));
            }
            // Progress: still working.
            b'p' => {}
            // Header changes, body replacement, recipients, quarantine: not for a probe; the
            // signature covers the message as sent, so they are ignored.
            b'm' | b'b' | b'+' | b'-' | b'2' | b'q' | b'e' => {}
            b'a' | b'c' | b's' => break,
            other => {
                let said = refused(other, &data);
                milter.quit().await;
                return Err(SignerError::Probe {
                    message: format!("the milter {said} the probe message"),
                    transient: other == b't',
                });
            }
        }
    }
    milter.quit().await;
    added.sort_by_key(|(index, _, _)| *index);
    Ok(added
        .into_iter()
        .map(|(_, name, value)| (name, value))
        .collect())
}

struct Milter<S> {
    stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Milter<S> {
    async fn send(&mut self, command: u8, data: &[u8]) -> Result<()> {
        let length = u32::try_from(data.len() + 1).map_err(|_| protocol("a packet too large"))?;
        let mut packet = Vec::with_capacity(data.len() + 5);
        packet.extend(length.to_be_bytes());
        packet.push(command);
        packet.extend(data);
        self.stream
            .write_all(&packet)
            .await
            .map_err(|err| lost(&err))
    }

    async fn receive(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut length = [0; 4];
        self.stream
            .read_exact(&mut length)
            .await
            .map_err(|err| lost(&err))?;
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 || length > MAX_PACKET {
            return Err(protocol(format!("sent a packet of {length} bytes")));
        }
        let mut packet = vec![0; length];
        self.stream
            .read_exact(&mut packet)
            .await
            .map_err(|err| lost(&err))?;
        let data = packet.split_off(1);
        Ok((packet[0], data))
    }

    /// The reply to `command`, skipping progress notes.
    async fn reply(&mut self, command: u8) -> Result<Reply> {
        loop {
            let (reply, data) = self.receive().await?;
            return match reply {
                b'c' | b's' => Ok(Reply::Continue),
                b'a' => Ok(Reply::Accept),
                b'p' => continue,
                other => Err(SignerError::Probe {
                    message: format!(
                        "the milter {} at step {:?}",
                        refused(other, &data),
                        char::from(command)
                    ),
                    transient: other == b't',
                }),
            };
        }
    }

    async fn quit(&mut self) {
        // The conversation is over either way: a milter gone already is no error.
        let _ = self.send(b'Q', &[]).await;
    }
}

/// NUL-terminated `values`, one after another.
fn strings(values: &[&str]) -> Vec<u8> {
    let mut data = Vec::new();
    for value in values {
        data.extend(value.as_bytes());
        data.push(0);
    }
    data
}

/// The two NUL-terminated strings of a header packet: name and value.
fn fields(data: &[u8]) -> Result<[String; 2]> {
    let mut parts = data.split(|&byte| byte == 0);
    let mut next = || {
        parts
            .next()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .ok_or_else(|| protocol("sent a header without a value"))
    };
    Ok([next()?, next()?])
}

/// What a milter's refusal says: rejected, temporarily failed, discarded, or its own SMTP reply.
fn refused(command: u8, data: &[u8]) -> String {
    match command {
        b'r' => "rejected".to_string(),
        b't' => "temporarily failed".to_string(),
        b'd' => "discarded".to_string(),
        b'y' => {
            let text = String::from_utf8_lossy(data);
            format!("answered {:?} to", text.trim_end_matches('\0'))
        }
        other => format!("sent an unknown reply {:?} to", char::from(other)),
    }
}

fn protocol(what: impl fmt::Display) -> SignerError {
    SignerError::Probe {
        message: format!("the milter {what}"),
        transient: false,
    }
}

fn lost(err: &std::io::Error) -> SignerError {
    SignerError::Probe {
        message: format!("the milter closed the connection: {err}"),
        transient: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_read_as_opendkim_writes_them() {
        assert_eq!(
            "inet:8891@127.0.0.1".parse::<MilterSocket>().unwrap(),
            MilterSocket::Inet {
                host: "127.0.0.1".into(),
                port: 8891
            }
        );
        assert_eq!(
            "inet6:8891@[::1]".parse::<MilterSocket>().unwrap(),
            MilterSocket::Inet {
                host: "::1".into(),
                port: 8891
            }
        );
        assert_eq!(
            "local:/run/opendkim/opendkim.sock"
                .parse::<MilterSocket>()
                .unwrap(),
            MilterSocket::Unix("/run/opendkim/opendkim.sock".into())
        );
        for bad in [
            "8891",
            "inet:x@h",
            "inet:0@h",
            "inet:8891@",
            "unix:relative",
            "tcp:1@h",
        ] {
            let err = bad.parse::<MilterSocket>().unwrap_err();
            assert!(err.contains("is not a milter socket"), "{bad}: {err}");
        }
    }
}
