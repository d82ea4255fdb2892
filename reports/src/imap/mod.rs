//! `type: imap`: reports read from an IMAP mailbox (the `rua=` address's), over TLS; processed
//! messages are moved to `processed:` or flagged `\Seen`.
//!
//! One connection per call: [`Source::fetch`] logs in, selects the mailbox, searches it, reads
//! each message's size and then (if small enough) its bytes with `BODY.PEEK[]` (so nothing is
//! marked read); [`Source::done`] moves or flags what was processed. Each call is bounded by
//! `timeout:`.

mod conn;
mod settings;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use async_imap::error::Error as ImapError;
use futures_util::TryStreamExt;
use tokio_rustls::rustls;
use zeroize::Zeroizing;

use crate::{Fetched, ReportError, Skipped, Source, async_trait};
use conn::{Conn, Io};

pub use settings::ImapSettings;

/// The environment variable holding the password unless `password_env:` names another.
pub const DEFAULT_PASSWORD_ENV: &str = "ROTOR_IMAP_PASSWORD";

/// How long a connection may take unless `timeout:` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// UIDs per `UID FETCH … RFC822.SIZE` command (keeps each command line short).
const SIZE_BATCH: usize = 500;

/// How the connection is protected (`tls:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain text, then `STARTTLS` before logging in (port 143).
    StartTls,
    /// No TLS (a server on this machine only).
    Plain,
}

/// Where the password is read at each connection.
#[derive(Clone, Debug)]
enum Password {
    File(PathBuf),
    Env(String),
}

/// An IMAP mailbox holding DMARC aggregate reports.
pub struct Imap {
    host: String,
    port: u16,
    tls: Security,
    user: String,
    password: Password,
    mailbox: String,
    processed: Option<String>,
    timeout: Duration,
    /// The TLS settings (the platform's roots, plus `ca_file:`'s), unless `tls: none`.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    server_name: rustls::pki_types::ServerName<'static>,
}

type Client = Session<Conn>;

impl Imap {
    /// Checks the settings (TLS mode, the password's source, the CA file) without connecting;
    /// the password itself is read at each connection.
    pub fn new(settings: ImapSettings) -> Result<Self, ReportError> {
        let setting = |message: String| ReportError::Setting(format!("imap: {message}"));
        let host = settings.host.trim().to_string();
        if host.is_empty() {
            return Err(setting("`host:` is empty".into()));
        }
        let tls = match settings.tls.as_deref().map(str::trim) {
            None | Some("implicit") => Security::Implicit,
            Some("starttls") => Security::StartTls,
            Some("none") => Security::Plain,
            Some(other) => {
                return Err(setting(format!(
                    "unknown `tls: {other}`: write `implicit` (port 993), `starttls` (port 143) or `none` (a server on this machine only)"
                )));
            }
        };
        if tls == Security::Plain && !is_loopback(&host) {
            return Err(setting(format!(
                "`tls: none` would send the password to {host} in clear text: it is only allowed to a loopback address (127.0.0.1, ::1, localhost); use `tls: implicit` or `tls: starttls`"
            )));
        }
        let port = settings.port.unwrap_or(match tls {
            Security::Implicit => 993,
            Security::StartTls | Security::Plain => 143,
        });
        let user = settings.user.clone();
        if user.is_empty() || user.contains(['\r', '\n']) {
            return Err(setting(
                "`user:` must be a non-empty login on one line".into(),
            ));
        }
        let password = match (&settings.password_file, &settings.password_env) {
            (Some(_), Some(_)) => {
                return Err(setting(
                    "set `password_file:` or `password_env:`, not both".into(),
                ));
            }
            (Some(file), None) => {
                rotor_common::secret::check(file, "the IMAP password file").map_err(setting)?;
                Password::File(file.clone())
            }
            (None, env) => {
                let name = env.as_deref().unwrap_or(DEFAULT_PASSWORD_ENV).to_string();
                if std::env::var_os(&name).is_none_or(|value| value.is_empty()) {
                    return Err(setting(format!(
                        "the environment variable {name} holding the password of {user} is not set (or set `password_file:`)"
                    )));
                }
                Password::Env(name)
            }
        };
        let mailbox = settings.mailbox.clone().unwrap_or_else(|| "INBOX".into());
        for (key, name) in [
            ("mailbox", Some(&mailbox)),
            ("processed", settings.processed.as_ref()),
        ] {
            if let Some(name) = name
                && (name.is_empty() || name.contains(['\r', '\n']))
            {
                return Err(setting(format!(
                    "`{key}:` must be a mailbox name on one line"
                )));
            }
        }
        if settings.processed.as_ref() == Some(&mailbox) {
            return Err(setting(format!(
                "`processed: {mailbox}` is the mailbox read: name another (e.g. `{mailbox}.processed`), or leave it out to flag messages \\Seen"
            )));
        }
        let timeout = settings.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        if timeout.is_zero() {
            return Err(setting("`timeout:` must be longer than zero".into()));
        }
        let server_name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|err| setting(format!("`host: {host}` is not a host name: {err}")))?;
        let tls_config = match tls {
            Security::Plain => None,
            Security::Implicit | Security::StartTls => Some(Arc::new(
                rotor_common::tls::client_config(settings.ca_file.as_deref()).map_err(setting)?,
            )),
        };
        Ok(Self {
            host,
            port,
            tls,
            user,
            password,
            mailbox,
            processed: settings.processed,
            timeout,
            tls_config,
            server_name,
        })
    }

    /// `user at host:port`, for messages.
    fn whom(&self) -> String {
        format!("imap {} at {}:{}", self.user, self.host, self.port)
    }

    fn unreachable(&self, what: impl std::fmt::Display) -> ReportError {
        ReportError::Unreachable(format!("{}: {what}", self.whom()))
    }

    fn refused(&self, what: impl std::fmt::Display) -> ReportError {
        ReportError::Refused(format!("{}: {what}", self.whom()))
    }

    /// An error of a command: a `NO` is a refusal (a missing mailbox, a permission), anything
    /// else (a broken connection, a response that makes no sense) is worth another try.
    fn command_error(&self, what: &str, err: ImapError) -> ReportError {
        match err {
            ImapError::No(text) => self.refused(format!("{what} refused: {}", server_says(&text))),
            ImapError::Bad(text) => self.unreachable(format!(
                "{what} failed: the server answered BAD ({})",
                server_says(&text)
            )),
            other => self.unreachable(format!("{what} failed: {other}")),
        }
    }

    /// Runs `work` on a logged-in session with the mailbox selected (its UIDVALIDITY given),
    /// logs out, all within the timeout.
    async fn with_mailbox<T>(
        &self,
        work: impl AsyncFnOnce(&mut Client, u32) -> Result<T, ReportError>,
    ) -> Result<T, ReportError> {
        let session = async {
            let mut session = self.login().await?;
            let mailbox = session
                .select(&self.mailbox)
                .await
                .map_err(|err| match err {
                    ImapError::No(text) => self.refused(format!(
                        "cannot open the mailbox {} ({}): check `mailbox:`",
                        self.mailbox,
                        server_says(&text)
                    )),
                    other => self.command_error(&format!("SELECT {}", self.mailbox), other),
                })?;
            let validity = mailbox.uid_validity.unwrap_or(0);
            let result = work(&mut session, validity).await;
            // The work is done (or failed); a failing LOGOUT changes nothing.
            let _ = session.logout().await;
            result
        };
        tokio::time::timeout(self.timeout, session)
            .await
            .map_err(|_| {
                self.unreachable(format!(
                    "no answer within {} (`timeout:`)",
                    humantime_secs(self.timeout)
                ))
            })?
    }

    /// Connects (TLS as set), reads the greeting, and logs in.
    async fn login(&self) -> Result<Client, ReportError> {
        let tcp = tokio::net::TcpStream::connect((
            self.host.trim_start_matches('[').trim_end_matches(']'),
            self.port,
        ))
        .await
        .map_err(|err| self.unreachable(format!("cannot connect: {err}")))?;
        let stream: Box<dyn Io> = match self.tls {
            Security::Plain => Box::new(tcp),
            Security::Implicit => Box::new(self.handshake(tcp).await?),
            Security::StartTls => {
                let mut client = async_imap::Client::new(tcp);
                self.greeting(&mut client).await?;
                client
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|err| match err {
                        ImapError::Bad(text) | ImapError::No(text) => self.refused(format!(
                            "the server does not offer STARTTLS ({}): use `tls: implicit` (port 993)",
                            server_says(&text)
                        )),
                        other => self.unreachable(format!("STARTTLS failed: {other}")),
                    })?;
                Box::new(self.handshake(client.into_inner()).await?)
            }
        };
        let password = self.password()?;
        let (conn, placeholder) = Conn::new(stream, &password);
        let mut client = async_imap::Client::new(conn);
        if self.tls != Security::StartTls {
            self.greeting(&mut client).await?;
        }
        client
            .login(&self.user, placeholder)
            .await
            .map_err(|(err, _)| match err {
                ImapError::No(text) | ImapError::Bad(text) => self.refused(format!(
                    "login refused ({}): check `user:` and the password",
                    server_says(&text)
                )),
                other => self.unreachable(format!("login failed: {other}")),
            })
    }

    /// Reads the server's greeting (`Client::new` does not).
    async fn greeting<T>(&self, client: &mut async_imap::Client<T>) -> Result<(), ReportError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        match client.read_response().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.unreachable("the server closed the connection before greeting")),
            Err(err) => Err(self.unreachable(format!("no greeting: {err}"))),
        }
    }

    /// The TLS handshake, with the server's certificate checked against `host:`.
    async fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ReportError> {
        let config = self
            .tls_config
            .clone()
            .expect("TLS is set up unless `tls: none`");
        tokio_rustls::TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|err| {
                let certificate = err
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .filter(|inner| {
                        matches!(
                            inner,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                match certificate {
                    Some(inner) => self.refused(format!(
                        "the server's certificate failed verification for {} ({inner}): if it is issued by a private CA, set `ca_file:` to that CA's certificate",
                        self.host
                    )),
                    None => self.unreachable(format!("TLS handshake failed: {err}")),
                }
            })
    }

    /// The password, read now (from its file, checked again, or the environment).
    fn password(&self) -> Result<Zeroizing<String>, ReportError> {
        let setting = |message: String| ReportError::Setting(format!("imap: {message}"));
        let password = match &self.password {
            Password::File(file) => {
                rotor_common::secret::check(file, "the IMAP password file").map_err(setting)?;
                let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|err| {
                    setting(format!(
                        "cannot read the IMAP password file {}: {err}",
                        file.display()
                    ))
                })?);
                Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string())
            }
            Password::Env(name) => Zeroizing::new(std::env::var(name).map_err(|_| {
                setting(format!(
                    "the environment variable {name} holding the password of {} is not set",
                    self.user
                ))
            })?),
        };
        if password.is_empty() || password.contains(['\r', '\n', '\0']) {
            return Err(setting(format!(
                "the password of {} is empty or spans lines",
                self.user
            )));
        }
        Ok(password)
    }

    /// Ensures `name` exists (CREATE it when LIST does not show it).
    async fn ensure_mailbox(&self, session: &mut Client, name: &str) -> Result<(), ReportError> {
        let listed: Vec<_> = session
            .list(Some(""), Some(name))
            .await
            .map_err(|err| self.command_error(&format!("LIST {name}"), err))?
            .try_collect()
            .await
            .map_err(|err| self.command_error(&format!("LIST {name}"), err))?;
        if listed.is_empty() {
            tracing::info!(source = %self.describe(), mailbox = name, "creating the mailbox for processed reports");
            session
                .create(name)
                .await
                .map_err(|err| self.command_error(&format!("CREATE {name}"), err))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Source for Imap {
    fn describe(&self) -> String {
        format!("imap {}@{}", self.user, self.host)
    }

    async fn fetch(&self, max_size: usize) -> Result<Vec<Result<Fetched, Skipped>>, ReportError> {
        self.with_mailbox(async |session, validity| {
            // Moved messages leave the mailbox, so every message in it is pending (even one a
            // person has read); otherwise \Seen marks the processed ones.
            let query = if self.processed.is_some() {
                "UNDELETED"
            } else {
                "UNSEEN UNDELETED"
            };
            let mut uids: Vec<u32> = session
                .uid_search(query)
                .await
                .map_err(|err| self.command_error("UID SEARCH", err))?
                .into_iter()
                .collect();
            uids.sort_unstable();
            let mut sizes = BTreeMap::new();
            for batch in uids.chunks(SIZE_BATCH) {
                let fetched: Vec<_> = session
                    .uid_fetch(uid_set(batch), "(UID RFC822.SIZE)")
                    .await
                    .map_err(|err| self.command_error("UID FETCH RFC822.SIZE", err))?
                    .try_collect()
                    .await
                    .map_err(|err| self.command_error("UID FETCH RFC822.SIZE", err))?;
                for message in fetched {
                    if let (Some(uid), Some(size)) = (message.uid, message.size) {
                        sizes.insert(uid, size as usize);
                    }
                }
            }
            let mut out = Vec::with_capacity(sizes.len());
            for (uid, size) in sizes {
                let id = format!("{validity}:{uid}");
                if size > max_size {
                    out.push(Err(Skipped {
                        id,
                        reason: format!(
                            "the message is {size} bytes, over the {max_size}-byte limit for a report"
                        ),
                    }));
                    continue;
                }
                let fetched: Vec<_> = session
                    .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                    .await
                    .map_err(|err| self.command_error("UID FETCH BODY.PEEK[]", err))?
                    .try_collect()
                    .await
                    .map_err(|err| self.command_error("UID FETCH BODY.PEEK[]", err))?;
                // Gone since the search (expunged by another client): nothing to hand over.
                let Some(body) = fetched
                    .iter()
                    .find(|message| message.uid == Some(uid))
                    .and_then(|message| message.body())
                else {
                    continue;
                };
                if body.len() > max_size {
                    out.push(Err(Skipped {
                        id,
                        reason: format!(
                            "the message is {} bytes, over the {max_size}-byte limit for a report",
                            body.len()
                        ),
                    }));
                    continue;
                }
                out.push(Ok(Fetched {
                    id,
                    bytes: body.to_vec(),
                }));
            }
            Ok(out)
        })
        .await
    }

    async fn done(&self, ids: &[String]) -> Result<(), ReportError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with_mailbox(async |session, validity| {
            let mut uids = Vec::new();
            for id in ids {
                match parse_id(id) {
                    Some((v, uid)) if v == validity => uids.push(uid),
                    Some(_) => tracing::warn!(
                        source = %self.describe(),
                        id = %id,
                        validity,
                        "the mailbox was recreated (its UIDVALIDITY changed): message {id} is not marked processed"
                    ),
                    None => tracing::warn!(source = %self.describe(), id = %id, "not an IMAP message id"),
                }
            }
            if uids.is_empty() {
                return Ok(());
            }
            uids.sort_unstable();
            uids.dedup();
            // The mailbox and the capabilities once; then the UIDs in batches (short lines).
            if let Some(target) = &self.processed {
                self.ensure_mailbox(session, target).await?;
            }
            let caps = session
                .capabilities()
                .await
                .map_err(|err| self.command_error("CAPABILITY", err))?;
            for batch in uids.chunks(SIZE_BATCH) {
                let set = uid_set(batch);
                match &self.processed {
                    Some(target) if caps.has_str("MOVE") => {
                        session
                            .uid_mv(&set, target)
                            .await
                            .map_err(|err| self.command_error(&format!("UID MOVE to {target}"), err))?;
                    }
                    Some(target) => {
                        session
                            .uid_copy(&set, target)
                            .await
                            .map_err(|err| self.command_error(&format!("UID COPY to {target}"), err))?;
                        let _: Vec<_> = session
                            .uid_store(&set, r"+FLAGS.SILENT (\Deleted)")
                            .await
                            .map_err(|err| self.command_error("UID STORE \\Deleted", err))?
                            .try_collect()
                            .await
                            .map_err(|err| self.command_error("UID STORE \\Deleted", err))?;
                        // UID EXPUNGE (UIDPLUS) removes only ours; a plain EXPUNGE also removes
                        // what someone else marked \Deleted, as their client would have.
                        if caps.has_str("UIDPLUS") {
                            let _: Vec<_> = session
                                .uid_expunge(&set)
                                .await
                                .map_err(|err| self.command_error("UID EXPUNGE", err))?
                                .try_collect()
                                .await
                                .map_err(|err| self.command_error("UID EXPUNGE", err))?;
                        } else {
                            let _: Vec<_> = session
                                .expunge()
                                .await
                                .map_err(|err| self.command_error("EXPUNGE", err))?
                                .try_collect()
                                .await
                                .map_err(|err| self.command_error("EXPUNGE", err))?;
                        }
                    }
                    None => {
                        let _: Vec<_> = session
                            .uid_store(&set, r"+FLAGS.SILENT (\Seen)")
                            .await
                            .map_err(|err| self.command_error("UID STORE \\Seen", err))?
                            .try_collect()
                            .await
                            .map_err(|err| self.command_error("UID STORE \\Seen", err))?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// The IMAP source for `settings`.
pub fn build(settings: &ImapSettings) -> Result<Box<dyn Source>, ReportError> {
    Ok(Box::new(Imap::new(settings.clone())?))
}

/// Whether `host` is this machine: a loopback address or `localhost`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The server's words in a `NO` or `BAD` as async-imap reports it (`code: …, info:
/// Some("…")`, or `outcome: Outcome { …, information: Some("…") }`).
fn server_says(text: &str) -> String {
    let words = ["information: Some(\"", "info: Some(\""]
        .iter()
        .find_map(|key| text.find(key).map(|at| &text[at + key.len()..]))
        .and_then(|rest| rest.rfind("\")").map(|end| &rest[..end]));
    match words {
        Some(words) => words.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => text.to_string(),
    }
}

/// `60s`, for messages.
fn humantime_secs(duration: Duration) -> String {
    rotor_common::Interval(duration).to_string()
}

/// `"{uidvalidity}:{uid}"` back into its numbers.
fn parse_id(id: &str) -> Option<(u32, u32)> {
    let (validity, uid) = id.split_once(':')?;
    Some((validity.parse().ok()?, uid.parse().ok()?))
}

/// `1:3,5` (an IMAP sequence set of UIDs, sorted; runs written as ranges).
fn uid_set(uids: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &uid in uids {
        match runs.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(uid) => *last = uid,
            _ => runs.push((uid, uid)),
        }
    }
    runs.iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}:{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "imap.example.com",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn the_servers_words() {
        assert_eq!(
            server_says(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication \"failed\".")"#
            ),
            r#"[AUTHENTICATIONFAILED] Authentication "failed"."#
        );
        assert_eq!(
            server_says(
                r#"outcome: Outcome { code: None, information: Some("Mailbox doesn't exist: DMARC") }"#
            ),
            "Mailbox doesn't exist: DMARC"
        );
        assert_eq!(server_says("odd"), "odd");
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_id("1700000000:42"), Some((1_700_000_000, 42)));
        assert_eq!(parse_id("42"), None);
        assert_eq!(parse_id("a:1"), None);
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
    }
}
