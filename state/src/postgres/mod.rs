//! The PostgreSQL backend: the store shared by the rotors of several hosts.
//!
//! Records are JSON (`jsonb`) in tables named for what they hold (`schema.rs`). A commit is one
//! transaction: each key it changes is read `FOR UPDATE` and compared, decoded, with what the
//! caller read (a new key is inserted only if absent), so of two instances taking the same step
//! one commits and the other gets [`StoreError::Conflict`], as with sled. PostgreSQL's default
//! `synchronous_commit` makes a commit durable when it returns.
//!
//! The `postgres` client runs its own runtime, which cannot start on a thread of rotor's: the
//! connection lives on a thread of its own, and every call is sent to it and waited for (the
//! caller blocks as it does on sled's flush).

mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use ::postgres::config::SslMode;
use ::postgres::{Client, Config, NoTls};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::model::{BootClock, DkimDay, Event, KeyRecord, PassRecord, SeenReport};
use crate::snapshot::{DomainSnapshot, Snapshot};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the connection's thread waits for a call while it holds no lease.
const IDLE: Duration = Duration::from_secs(3600);
/// How long a caller waits for its call (past the server's own statement timeout, 5 min).
const CALL_TIMEOUT: Duration = Duration::from_secs(360);

/// Where a shared store is and who uses it.
#[derive(Clone)]
pub struct PostgresSettings {
    /// The database, as a connection URL without a password
    /// (`postgres://rotor@db.example:5432/rotor`).
    pub url: String,
    /// The password, if the server asks for one (read from a file or the environment, never
    /// from the config).
    pub password: Option<Zeroizing<String>>,
    /// This instance's name, unique among those sharing the store (its host's, by default).
    pub instance: String,
    /// TLS to the database: `Some(true)` always, `Some(false)` never, `None` unless the
    /// database is on this machine (loopback, or a socket). With TLS, the server's certificate
    /// and name are checked against the platform's roots and `ca_file`.
    pub tls: Option<bool>,
    /// More trusted certificates (PEM), for a database whose certificate a private CA issued.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(hidden)"))
            .field("instance", &self.instance)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A call for the connection's thread.
type Call = Box<dyn FnOnce(&mut Client) + Send>;

/// What a call can fail with, before it is named with the store's location.
enum Failure {
    Db(::postgres::Error),
    Conflict { domain: String, selector: String },
    Fenced { domain: String },
    Corrupt { key: String, detail: String },
    Newer(i32),
    Older(i32),
}

impl From<::postgres::Error> for Failure {
    fn from(err: ::postgres::Error) -> Self {
        Self::Db(err)
    }
}

type Done<T> = Result<T, Failure>;

/// The leases an instance holds: each domain's fencing token, and for how long a lease is
/// taken (and renewed).
#[derive(Default)]
struct Held {
    tokens: BTreeMap<String, i64>,
    ttl: Option<Duration>,
}

/// The leases in `held`, locked (a poisoned lock still holds the tokens).
fn locked(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The store in a PostgreSQL database.
pub(crate) struct Postgres {
    /// The database, for errors: the URL without a password.
    location: String,
    instance: String,
    calls: Option<mpsc::Sender<Call>>,
    worker: Option<thread::JoinHandle<()>>,
    /// The leases this instance holds, shared with the connection's thread, which renews them.
    held: Arc<Mutex<Held>>,
    clean: bool,
    /// Opened for a pass: closing notes it closed cleanly.
    writer: bool,
    /// Opened by a reader before any pass made the schema: there is no store yet.
    pub(crate) empty: bool,
}

impl Postgres {
    /// Connects and brings the schema to this rotor's version; a `writer` (a pass, not a
    /// reader) is noted as having the store open until it closes it.
    pub(crate) fn open(settings: &PostgresSettings, writer: bool) -> Result<Self, StoreError> {
        let mut config: Config = settings.url.parse().map_err(|err| StoreError::Open {
            path: PathBuf::from(redacted(&settings.url)),
            detail: format!("not a PostgreSQL connection URL: {err}"),
        })?;
        if config.get_password().is_some() || has_password_parameter(&settings.url) {
            return Err(StoreError::Open {
                path: PathBuf::from(redacted(&settings.url)),
                detail: "the URL holds a password: give it in a file or the environment instead"
                    .into(),
            });
        }
        if let Some(password) = &settings.password {
            config.password(password.as_bytes());
        }
        // No call waits forever: statements, lock waits and a silent server are bounded, and a
        // commit is durable when it returns whatever the server's default.
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("rotor")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .tcp_user_timeout(Duration::from_secs(60))
            .options(
                "-c statement_timeout=300000 -c lock_timeout=30000 \
                 -c idle_in_transaction_session_timeout=300000 -c synchronous_commit=on",
            );
        let location = describe(&config);
        let tls = match settings.tls {
            Some(tls) => tls,
            None => !config.get_hosts().iter().all(is_local),
        };
        let tls = if tls {
            config.ssl_mode(SslMode::Require);
            let client = rotor_common::tls::client_config(settings.ca_file.as_deref()).map_err(
                |detail| StoreError::Open {
                    path: PathBuf::from(&location),
                    detail,
                },
            )?;
            Some(MakeRustlsConnect::new(client))
        } else {
            config.ssl_mode(SslMode::Disable);
            None
        };
        let (calls, incoming) = mpsc::channel::<Call>();
        let (ready, connected) = mpsc::channel();
        let held = Arc::new(Mutex::new(Held::default()));
        let (renewed, holder) = (Arc::clone(&held), settings.instance.clone());
        let worker = thread::Builder::new()
            .name("rotor-postgres".into())
            .spawn(move || {
                let connected = match tls {
                    Some(tls) => config.connect(tls),
                    None => config.connect(NoTls),
                };
                let mut client = match connected {
                    Ok(client) => client,
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                // Leases are renewed three times a lease, however busy the connection is.
                let mut renewal = Instant::now() + IDLE;
                loop {
                    let every = locked(&renewed).ttl.map_or(IDLE, |ttl| ttl / 3);
                    renewal = renewal.min(Instant::now() + every);
                    if Instant::now() >= renewal {
                        // A renewal that fails leaves the leases to run out: the commits of a
                        // domain whose lease moved on are refused.
                        let _ = renew(&mut client, &holder, &renewed);
                        renewal = Instant::now() + every;
                        continue;
                    }
                    match incoming.recv_timeout(renewal.saturating_duration_since(Instant::now())) {
                        // A call that panics (a bug) fails alone: its caller is told, and the
                        // connection goes on.
                        Ok(call) => {
                            let _ = panic::catch_unwind(AssertUnwindSafe(|| call(&mut client)));
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|err| StoreError::Open {
                path: PathBuf::from(&location),
                detail: format!("cannot start the connection's thread: {err}"),
            })?;
        let mut store = Self {
            location,
            instance: settings.instance.clone(),
            calls: Some(calls),
            worker: Some(worker),
            held,
            clean: false,
            writer: false,
            empty: false,
        };
        match connected.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(store.failure(Failure::Db(err))),
            Err(_) => return Err(store.gone()),
        }
        if writer {
            store.call(migrate)?;
        } else {
            store.empty = !store.call(check_schema)?;
        }
        if writer {
            let instance = store.instance.clone();
            let boot = crate::snapshot::boot_id();
            store.clean = store.call(move |client| opened(client, &instance, boot.as_deref()))?;
            store.writer = true;
        }
        Ok(store)
    }

    /// Runs `work` on the connection's thread and waits for it.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Client) -> Done<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let call: Call = Box::new(move |client| {
            let _ = reply.send(work(client));
        });
        let sent = self
            .calls
            .as_ref()
            .is_some_and(|calls| calls.send(call).is_ok());
        if !sent {
            return Err(self.gone());
        }
        match answer.recv_timeout(CALL_TIMEOUT) {
            Ok(done) => done.map_err(|failure| self.failure(failure)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::Unavailable {
                location: self.location.clone(),
                detail: format!("no answer in {} s", CALL_TIMEOUT.as_secs()),
            }),
            // The call panicked: a bug of rotor's, not the database's.
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Database {
                location: self.location.clone(),
                detail: "a call to the database failed inside rotor (a bug: please report it)"
                    .into(),
            }),
        }
    }

    fn gone(&self) -> StoreError {
        StoreError::Unavailable {
            location: self.location.clone(),
            detail: "the connection was lost".into(),
        }
    }

    fn failure(&self, failure: Failure) -> StoreError {
        let location = self.location.clone();
        match failure {
            Failure::Conflict { domain, selector } => StoreError::Conflict { domain, selector },
            Failure::Fenced { domain } => StoreError::Fenced { domain },
            Failure::Corrupt { key, detail } => StoreError::Corrupt {
                path: PathBuf::from(location),
                key,
                detail,
            },
            Failure::Newer(version) => StoreError::Open {
                path: PathBuf::from(location),
                detail: format!(
                    "its schema (version {version}) was written by a newer rotor (this one knows up to {}): nothing was changed; run that rotor, or a newer one",
                    schema::latest()
                ),
            },
            Failure::Older(version) => StoreError::Open {
                path: PathBuf::from(location),
                detail: format!(
                    "its schema (version {version}) is older than this rotor's ({}): the next pass brings it up to date",
                    schema::latest()
                ),
            },
            Failure::Db(err) if unavailable(&err) => StoreError::Unavailable {
                location,
                detail: describe_error(&err),
            },
            Failure::Db(err) => StoreError::Database {
                location,
                detail: describe_error(&err),
            },
        }
    }

    /// Reads the JSON records `sql` selects (as text, first column) with `params`.
    fn records<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<String>,
    ) -> Result<Vec<T>, StoreError> {
        self.call(move |client| {
            let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn ::postgres::types::ToSql + Sync))
                .collect();
            client
                .query(sql, &params)?
                .iter()
                .map(|row| decode(sql, row.get(0)))
                .collect()
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The thread ends when its queue closes, and the connection with it.
        self.calls.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// For a reader, who changes nothing: whether there is a store yet, refused unless its
/// schema is this rotor's (an older one is a pass's to migrate).
fn check_schema(client: &mut Client) -> Done<bool> {
    let exists: bool = client
        .query_one("SELECT to_regclass('rotor_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(false);
    }
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM rotor_schema", &[])?
        .get(0);
    if current > schema::latest() {
        return Err(Failure::Newer(current));
    }
    if current < schema::latest() {
        return Err(Failure::Older(current));
    }
    Ok(true)
}

/// Brings the schema to this rotor's version, under the migration lock.
fn migrate(client: &mut Client) -> Done<()> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&schema::MIGRATION_LOCK],
    )?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rotor_schema (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM rotor_schema", &[])?
        .get(0);
    if current > schema::latest() {
        return Err(Failure::Newer(current));
    }
    for (version, sql) in schema::MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO rotor_schema (version) VALUES ($1)", &[version])?;
    }
    tx.commit()?;
    Ok(())
}

/// Extends every lease `holder` holds (those still its own) by their time.
fn renew(client: &mut Client, holder: &str, held: &Mutex<Held>) -> Done<()> {
    let (domains, tokens, ttl) = {
        let held = locked(held);
        let Some(ttl) = held.ttl else {
            return Ok(());
        };
        let (domains, tokens): (Vec<String>, Vec<i64>) =
            held.tokens.iter().map(|(d, t)| (d.clone(), *t)).unzip();
        (domains, tokens, ttl.as_secs_f64())
    };
    client.execute(
        "UPDATE leases SET expires_at = now() + make_interval(secs => $4)
         FROM unnest($2::text[], $3::bigint[]) AS mine (domain, token)
         WHERE leases.domain = mine.domain AND leases.token = mine.token
           AND leases.holder = $1 AND leases.expires_at > now()",
        &[&holder, &domains, &tokens, &ttl],
    )?;
    Ok(())
}

/// Notes `instance` as having the store open; returns whether it had closed it cleanly during
/// this boot (`boot`) the time before.
fn opened(client: &mut Client, instance: &str, boot: Option<&str>) -> Done<bool> {
    let mut tx = client.transaction()?;
    let before = tx.query_opt(
        "SELECT boot_id, clean FROM writers WHERE instance = $1 FOR UPDATE",
        &[&instance],
    )?;
    let clean = before.is_some_and(|row| {
        let last_boot: Option<String> = row.get(0);
        let clean: bool = row.get(1);
        clean && boot.is_some() && last_boot.as_deref() == boot
    });
    tx.execute(
        "INSERT INTO writers (instance, boot_id, clean) VALUES ($1, $2, false)
         ON CONFLICT (instance) DO UPDATE SET boot_id = EXCLUDED.boot_id, clean = false",
        &[&instance, &boot],
    )?;
    tx.commit()?;
    Ok(clean)
}

/// Where `instance`'s last pass is kept: each instance has its own (a host's clock a little
/// behind another's must not read as a clock that went back).
fn pass_name(instance: &str) -> String {
    format!("last_pass:{instance}")
}

/// `domain`'s part of a snapshot being read.
fn part(found: &mut BTreeMap<String, DomainSnapshot>, domain: String) -> &mut DomainSnapshot {
    found
        .entry(domain.clone())
        .or_insert_with(|| DomainSnapshot {
            domain,
            ..DomainSnapshot::default()
        })
}

/// A stored JSON record, decoded; damage is named with `what` it was read by.
fn decode<T: DeserializeOwned>(what: &str, text: &str) -> Done<T> {
    serde_json::from_str(text).map_err(|err| Failure::Corrupt {
        key: what
            .split_whitespace()
            .take(6)
            .collect::<Vec<_>>()
            .join(" "),
        detail: err.to_string(),
    })
}

/// `value` as the JSON text a record column holds.
fn encode<T: Serialize>(value: &T) -> Done<String> {
    serde_json::to_string(value).map_err(|err| Failure::Corrupt {
        key: "(a record being written)".into(),
        detail: err.to_string(),
    })
}

/// Inside a transaction: makes `domains` due at once (time 0), as every commit does.
fn mark_due_now(tx: &mut ::postgres::Transaction<'_>, domains: &[String]) -> Done<()> {
    tx.execute(
        "INSERT INTO due (domain, at) SELECT unnest($1::text[]), 0
         ON CONFLICT (domain) DO UPDATE SET at = 0",
        &[&domains],
    )?;
    Ok(())
}

/// A time for a `bigint` column: times past its range (292 billion years: only the engine's
/// "never") are kept as its end.
fn db_time(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// Whether `err` says the database cannot be reached now, rather than that it refused.
fn unavailable(err: &::postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    // A certificate refused, TLS the server does not speak: the operator's to fix.
    if causes(err).any(|cause| cause.downcast_ref::<rustls::Error>().is_some())
        || describe_error(err).contains("TLS")
    {
        return false;
    }
    match err.code() {
        // Connection exceptions, insufficient resources, an operator's shutdown or restart,
        // serialization failures and deadlocks: retried by the next run.
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
        }
        // No answer from the server at all (the connection broke, or could not be made).
        None => true,
    }
}

/// The error as the server or the client put it, with its causes.
fn describe_error(err: &::postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = err.to_string();
    for cause in causes(err).skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// `err` and the errors that caused it, outermost first.
fn causes<'e>(
    err: &'e ::postgres::Error,
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |err| {
        err.source()
    })
}

/// Whether `url` names a password among its parameters (`?password=…`).
pub fn has_password_parameter(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("password"))
        })
    })
}

/// Whether `host` is this machine: a socket, a loopback address, `localhost`.
fn is_local(host: &::postgres::config::Host) -> bool {
    match host {
        ::postgres::config::Host::Unix(_) => true,
        ::postgres::config::Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// `postgres://user@host:port/dbname`, without the password.
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            ::postgres::config::Host::Tcp(name) => name.clone(),
            ::postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or_default(),
        config.get_dbname().unwrap_or_default()
    )
}

/// `url` as errors show it: its scheme and host, nothing that could be a secret (a password in
/// the user part or in a parameter).
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a connection URL)".into();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

impl Backend for Postgres {
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.records("SELECT record FROM keys ORDER BY domain, selector", vec![])
    }

    fn domain_keys(&self, domain: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.records(
            "SELECT record FROM keys WHERE domain = $1 ORDER BY selector",
            vec![domain.to_string()],
        )
    }

    fn history(&self, domain: &str) -> Result<Vec<Event>, StoreError> {
        self.records(
            "SELECT record FROM events WHERE domain = $1 ORDER BY at, id",
            vec![domain.to_string()],
        )
    }

    fn last_pass(&self) -> Result<Option<PassRecord>, StoreError> {
        let found: Vec<Option<PassRecord>> = self.records(
            "SELECT value FROM meta WHERE name = $1",
            vec![pass_name(&self.instance)],
        )?;
        Ok(found.into_iter().next().flatten())
    }

    fn record_pass(
        &self,
        at: u64,
        boot: Option<BootClock>,
        success: bool,
    ) -> Result<PassRecord, StoreError> {
        let name = pass_name(&self.instance);
        self.call(move |client| {
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ($1, 'null') ON CONFLICT DO NOTHING",
                &[&name],
            )?;
            let row = tx.query_one(
                "SELECT value FROM meta WHERE name = $1 FOR UPDATE",
                &[&name],
            )?;
            let before: Option<PassRecord> = decode("meta last_pass", row.get(0))?;
            let record = PassRecord::after(before, at, boot, success);
            let text = encode(&record)?;
            tx.execute(
                "UPDATE meta SET value = $2 WHERE name = $1",
                &[&name, &text],
            )?;
            tx.commit()?;
            Ok(record)
        })
    }

    fn transact(
        &self,
        changes: &[(Option<&KeyRecord>, &KeyRecord)],
        events: &[Event],
        domains: &[&str],
    ) -> Result<(), StoreError> {
        let writes: Vec<(Option<KeyRecord>, String, String, String)> = changes
            .iter()
            .map(|(before, after)| {
                Ok((
                    before.cloned(),
                    after.domain.clone(),
                    after.selector.clone(),
                    encode(after).map_err(|f| self.failure(f))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let events: Vec<(String, i64, String)> = events
            .iter()
            .map(|event| {
                Ok((
                    event.domain.clone(),
                    db_time(event.at),
                    encode(event).map_err(|f| self.failure(f))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let fenced: Vec<(String, i64)> = {
            let held = locked(&self.held);
            domains
                .iter()
                .filter_map(|d| held.tokens.get(d).map(|token| (d.clone(), *token)))
                .collect()
        };
        let holder = self.instance.clone();
        self.call(move |client| {
            let mut tx = client.transaction()?;
            if !fenced.is_empty() {
                // The leases of the domains, still this instance's and running, locked until
                // the commit: a takeover waits for it, and one that came first refuses it.
                let (names, tokens): (Vec<&String>, Vec<i64>) =
                    fenced.iter().map(|(d, t)| (d, *t)).unzip();
                let still: BTreeSet<String> = tx
                    .query(
                        "SELECT leases.domain FROM leases
                         JOIN unnest($2::text[], $3::bigint[]) AS mine (domain, token)
                           ON leases.domain = mine.domain AND leases.token = mine.token
                         WHERE leases.holder = $1 AND leases.expires_at > now()
                         FOR SHARE OF leases",
                        &[&holder, &names, &tokens],
                    )?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                if let Some((lost, _)) = fenced.iter().find(|(d, _)| !still.contains(d)) {
                    return Err(Failure::Fenced {
                        domain: lost.clone(),
                    });
                }
            }
            for (before, domain, selector, after) in &writes {
                let written = match before {
                    // A new key: only if there is none yet (a racing insert waits for the
                    // other transaction, then finds the row and writes nothing).
                    None => tx.execute(
                        "INSERT INTO keys (domain, selector, record) VALUES ($1, $2, $3)
                         ON CONFLICT (domain, selector) DO NOTHING",
                        &[domain, selector, after],
                    )?,
                    Some(before) => {
                        let current = tx.query_opt(
                            "SELECT record FROM keys WHERE domain = $1 AND selector = $2 FOR UPDATE",
                            &[domain, selector],
                        )?;
                        let current: Option<KeyRecord> = current
                            .map(|row| decode(&format!("keys {domain} {selector}"), row.get(0)))
                            .transpose()?;
                        if current.as_ref() != Some(before) {
                            0
                        } else {
                            tx.execute(
                                "UPDATE keys SET record = $3 WHERE domain = $1 AND selector = $2",
                                &[domain, selector, after],
                            )?
                        }
                    }
                };
                if written != 1 {
                    // Dropping the transaction rolls it back.
                    return Err(Failure::Conflict {
                        domain: domain.clone(),
                        selector: selector.clone(),
                    });
                }
            }
            for (domain, at, record) in &events {
                tx.execute(
                    "INSERT INTO events (domain, at, record) VALUES ($1, $2, $3)",
                    &[domain, at, record],
                )?;
            }
            mark_due_now(&mut tx, &domains)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn due(&self, fingerprint: &str, now: u64) -> Result<Option<BTreeSet<String>>, StoreError> {
        let fingerprint = fingerprint.to_string();
        let now = db_time(now);
        self.call(move |client| {
            let mut tx = client.build_transaction().read_only(true).start()?;
            let written: Option<String> = tx
                .query_one("SELECT value FROM meta WHERE name = 'due_fingerprint'", &[])?
                .get(0);
            if written.as_deref() != Some(fingerprint.as_str()) {
                return Ok(None);
            }
            let due = tx
                // A time past bigint's range is kept as its end, which stands for never.
                .query(
                    "SELECT domain FROM due WHERE at <= $1 AND at < $2",
                    &[&now, &i64::MAX],
                )?
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect();
            tx.commit()?;
            Ok(Some(due))
        })
    }

    fn set_due(
        &self,
        fingerprint: &str,
        due: &[(&str, u64)],
        every: bool,
    ) -> Result<(), StoreError> {
        let fingerprint = fingerprint.to_string();
        let domains: Vec<String> = due.iter().map(|(domain, _)| domain.to_string()).collect();
        let times: Vec<i64> = due.iter().map(|(_, at)| db_time(*at)).collect();
        self.call(move |client| {
            let mut tx = client.transaction()?;
            if every {
                tx.execute("DELETE FROM due WHERE NOT (domain = ANY($1))", &[&domains])?;
            }
            tx.execute(
                "INSERT INTO due (domain, at) SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (domain) DO UPDATE SET at = EXCLUDED.at",
                &[&domains, &times],
            )?;
            tx.execute(
                "UPDATE meta SET value = $1 WHERE name = 'due_fingerprint'",
                &[&fingerprint],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn record_report(&self, report: &SeenReport, days: &[DkimDay]) -> Result<bool, StoreError> {
        let seen = (
            report.org.clone(),
            report.report_id.clone(),
            encode(report).map_err(|f| self.failure(f))?,
        );
        let days = days.to_vec();
        self.call(move |client| {
            let mut tx = client.transaction()?;
            let (org, id, record) = &seen;
            let new = tx.execute(
                "INSERT INTO reports (org, report_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (org, report_id) DO NOTHING",
                &[org, id, record],
            )?;
            if new == 0 {
                return Ok(false);
            }
            let mut domains = BTreeSet::new();
            for day in &days {
                domains.insert(day.domain.clone());
                let zero = DkimDay {
                    pass: 0,
                    fail: 0,
                    other: 0,
                    orgs: Default::default(),
                    ..day.clone()
                };
                let key = (day.domain.as_str(), day.selector.as_str(), db_time(day.day));
                let zero = encode(&zero)?;
                // The row first, so that two reports of one day add up instead of racing.
                tx.execute(
                    "INSERT INTO dkim_days (domain, selector, day, record) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    &[&key.0, &key.1, &key.2, &zero],
                )?;
                let row = tx.query_one(
                    "SELECT record FROM dkim_days WHERE domain = $1 AND selector = $2 AND day = $3 FOR UPDATE",
                    &[&key.0, &key.1, &key.2],
                )?;
                let mut total: DkimDay =
                    decode(&format!("dkim_days {} {} {}", key.0, key.1, key.2), row.get(0))?;
                total.pass += day.pass;
                total.fail += day.fail;
                total.other += day.other;
                total.orgs.extend(day.orgs.iter().cloned());
                let total = encode(&total)?;
                tx.execute(
                    "UPDATE dkim_days SET record = $4 WHERE domain = $1 AND selector = $2 AND day = $3",
                    &[&key.0, &key.1, &key.2, &total],
                )?;
            }
            let domains: Vec<String> = domains.into_iter().collect();
            mark_due_now(&mut tx, &domains)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn dkim_days(&self, domain: &str) -> Result<Vec<DkimDay>, StoreError> {
        self.records(
            "SELECT record FROM dkim_days WHERE domain = $1 ORDER BY selector, day",
            vec![domain.to_string()],
        )
    }

    fn seen_reports(&self) -> Result<Vec<SeenReport>, StoreError> {
        self.records("SELECT record FROM reports ORDER BY org, report_id", vec![])
    }

    fn read(&self, domains: Option<&[&str]>, history: bool) -> Result<Snapshot, StoreError> {
        let only: Option<Vec<String>> =
            domains.map(|domains| domains.iter().map(|d| d.to_string()).collect());
        let pass_name = pass_name(&self.instance);
        self.call(move |client| {
            // One snapshot of the database for every query: the store as of one commit.
            let mut tx = client
                .build_transaction()
                .isolation_level(::postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut found: BTreeMap<String, DomainSnapshot> = BTreeMap::new();
            // Each table's records of the domains asked for (all: `None`), by domain.
            let mut rows = |table: &str, order: &str| -> Done<Vec<(String, String)>> {
                let select = format!("SELECT domain, record FROM {table}");
                let rows = match &only {
                    Some(only) => tx.query(
                        &format!("{select} WHERE domain = ANY($1) ORDER BY domain, {order}"),
                        &[only],
                    )?,
                    None => tx.query(&format!("{select} ORDER BY domain, {order}"), &[])?,
                };
                Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
            };
            for (domain, text) in rows("keys", "selector")? {
                let key = decode("keys", &text)?;
                part(&mut found, domain).keys.push(key);
            }
            if history {
                for (domain, text) in rows("events", "at, id")? {
                    let event = decode("events", &text)?;
                    part(&mut found, domain).history.push(event);
                }
            }
            for (domain, text) in rows("dkim_days", "selector, day")? {
                let day = decode("dkim_days", &text)?;
                part(&mut found, domain).dkim.push(day);
            }
            let pass = tx.query_opt("SELECT value FROM meta WHERE name = $1", &[&pass_name])?;
            let last_pass: Option<PassRecord> = match pass {
                Some(row) => decode("meta last_pass", row.get(0))?,
                None => None,
            };
            tx.commit()?;
            Ok(Snapshot::new(found.into_values().collect(), last_pass))
        })
    }

    fn lease(&self, domains: &[&str], ttl: Duration) -> Result<Vec<String>, StoreError> {
        // In one order for every instance: two taking many leases at once never deadlock.
        let mut wanted: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let (holder, held) = (self.instance.clone(), Arc::clone(&self.held));
        let seconds = ttl.as_secs_f64();
        self.call(move |client| {
            // Free or run out (or this instance's own, from a pass that died): taken, with a
            // new token; held by another: skipped (a racing taker waits on the row's lock,
            // then finds it taken).
            let rows = client.query(
                "INSERT INTO leases (domain, holder, token, expires_at)
                 SELECT domain, $1, nextval('lease_tokens'), now() + make_interval(secs => $3)
                 FROM unnest($2::text[]) AS domain
                 ON CONFLICT (domain) DO UPDATE
                   SET holder = EXCLUDED.holder, token = EXCLUDED.token,
                       expires_at = EXCLUDED.expires_at
                   WHERE leases.expires_at <= now() OR leases.holder = EXCLUDED.holder
                 RETURNING domain, token",
                &[&holder, &wanted, &seconds],
            )?;
            let mut held = locked(&held);
            held.ttl = Some(ttl);
            let mut leased = Vec::with_capacity(rows.len());
            for row in rows {
                let domain: String = row.get(0);
                held.tokens.insert(domain.clone(), row.get(1));
                leased.push(domain);
            }
            Ok(leased)
        })
    }

    fn closed_cleanly(&self) -> bool {
        self.clean
    }

    fn close(self: Box<Self>) -> Result<(), StoreError> {
        if !self.writer {
            return Ok(());
        }
        let instance = self.instance.clone();
        let (domains, tokens): (Vec<String>, Vec<i64>) = locked(&self.held)
            .tokens
            .iter()
            .map(|(d, t)| (d.clone(), *t))
            .unzip();
        self.call(move |client| {
            let mut tx = client.transaction()?;
            // The leases go back: another instance need not wait for them to run out.
            tx.execute(
                "DELETE FROM leases USING unnest($2::text[], $3::bigint[]) AS mine (domain, token)
                 WHERE leases.domain = mine.domain AND leases.token = mine.token
                   AND leases.holder = $1",
                &[&instance, &domains, &tokens],
            )?;
            tx.execute(
                "UPDATE writers SET clean = true WHERE instance = $1",
                &[&instance],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}
