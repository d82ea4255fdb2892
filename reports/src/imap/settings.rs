//! The `type: imap` report source's settings.

use std::path::PathBuf;

use rotor_common::Interval;
use serde::Deserialize;

/// An IMAP mailbox that receives the `rua=` reports.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    /// The server's host name (checked against its certificate).
    pub host: String,
    /// Its port (default 993, or 143 with `tls: starttls` or `tls: none`).
    pub port: Option<u16>,
    /// `implicit` (default, port 993), `starttls`, or `none` (only to a loopback address).
    pub tls: Option<String>,
    /// PEM certificates of a private CA to trust for this server, besides the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// The login.
    pub user: String,
    /// A file holding the password (mode 0600, owned by rotor's user or root).
    pub password_file: Option<PathBuf>,
    /// The environment variable holding the password (default `ROTOR_IMAP_PASSWORD`).
    pub password_env: Option<String>,
    /// The mailbox to read (default `INBOX`).
    pub mailbox: Option<String>,
    /// Where processed messages are moved (created if missing); without it they are flagged
    /// `\Seen` and later passes skip seen messages.
    pub processed: Option<String>,
    /// How long one connection may take (default 60s).
    pub timeout: Option<Interval>,
    /// The `rua=` address whose mail arrives here (for `rotor check`; an IMAP login that is an
    /// address is taken as it).
    pub address: Option<String>,
}
