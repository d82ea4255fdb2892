//! A real PostgreSQL (Debian's `postgresql`) on 127.0.0.1, private to a test: a cluster made
//! by `initdb` in the test's directory, one database (`rotor`) and one user (`rotor`, with
//! [`PASSWORD`], SCRAM over TCP), started in the foreground as our child on a free port and
//! stopped (a fast shutdown, then a kill) when dropped.
//!
//! As root, `initdb` and `postgres` (which refuse to run as root) run as the `postgres` user
//! (`setpriv`), who then owns the directory; as any other user, as that user.
//!
//! [`Postgres::start_tls`] also offers TLS, with a certificate for `localhost` and 127.0.0.1
//! issued by a private test CA ([`Postgres::ca`]).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Running, free_port, issue_certificate, start_server};

/// The password of the `rotor` user.
pub const PASSWORD: &str = "pg-secret-Lk42";

/// How long PostgreSQL may take to stop.
const STOP: Duration = Duration::from_secs(20);

/// A running PostgreSQL, stopped when dropped.
pub struct Postgres {
    server: Option<Running>,
    dir: PathBuf,
    bin: PathBuf,
    user: Option<String>,
    tls: bool,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
}

/// The newest PostgreSQL's `bin` directory.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .map(|dir| dir.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("PostgreSQL is not installed: apt-get install postgresql (tests/run.sh does)")
}

impl Postgres {
    /// Makes a cluster in `dir` (created, mode 0700) and starts it.
    pub fn start(dir: &Path) -> Self {
        Self::make(dir, false)
    }

    /// [`Postgres::start`], offering TLS too.
    pub fn start_tls(dir: &Path) -> Self {
        Self::make(dir, true)
    }

    /// The private CA's certificate (PEM) that issued the server's, with TLS.
    pub fn ca(&self) -> PathBuf {
        assert!(self.tls, "started without TLS");
        self.dir.join("ca.pem")
    }

    fn make(dir: &Path, tls: bool) -> Self {
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        let root = fs::metadata(dir).unwrap().uid() == 0;
        let user = root.then(|| "postgres".to_string());
        let bin = bin_dir();
        fs::write(dir.join("pwfile"), format!("{PASSWORD}\n")).unwrap();
        if tls {
            issue_certificate(dir);
        }
        if let Some(user) = &user {
            let chowned = Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(dir)
                .status()
                .unwrap();
            assert!(chowned.success(), "chown {user} {}", dir.display());
        }
        let mut initdb = as_user(&user, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "rotor", "-A", "scram-sha-256", "--auth-local=trust"])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()))
            .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
        let out = initdb.output().expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut postgres = Self {
            server: None,
            dir: dir.to_owned(),
            bin,
            user,
            tls,
            port: free_port(),
        };
        postgres.run();
        postgres.psql("postgres", "CREATE DATABASE rotor");
        postgres
    }

    /// Starts the server on the cluster (again).
    fn run(&mut self) {
        let mut command = as_user(&self.user, &self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]);
        if self.tls {
            command
                .args(["-c", "ssl=on", "-c"])
                .arg(format!(
                    "ssl_cert_file={}",
                    self.dir.join("cert.pem").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.join("key.pem").display()
                ));
        }
        let ready = self.bin.join("pg_isready");
        let port = self.port.to_string();
        let server = start_server(
            command,
            &self.dir.join("server.log"),
            "postgres",
            "apt-get install postgresql",
            || {
                Command::new(&ready)
                    .args(["-q", "-h", "127.0.0.1", "-p", &port])
                    .status()
                    .is_ok_and(|status| status.success())
            },
        );
        self.server = Some(server);
    }

    /// Stops the server (a fast shutdown: sessions are ended), then starts it again on the
    /// same port: what a restart of the database does to its clients.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Stops the server until [`Postgres::start_again`]: a database that is down.
    pub fn stop_for_test(&mut self) {
        self.stop();
    }

    /// Starts the server stopped with [`Postgres::stop_for_test`] again, on the same port.
    pub fn start_again(&mut self) {
        self.run();
    }

    /// The connection URL, without the password.
    pub fn url(&self) -> String {
        format!("postgres://rotor@127.0.0.1:{}/rotor", self.port)
    }

    /// Runs `sql` in `database` with psql over the server's socket, as `rotor`; its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "rotor", "-d", database])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // SIGINT: a fast shutdown (sessions ended, a clean checkpoint); the SIGKILL of
        // `Running` would leave the server's children and its shared memory behind.
        let _ = Command::new("kill")
            .args(["-INT", &server.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < STOP && !matches!(server.0.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `program`, run as `user` when given (from root, with `setpriv`).
fn as_user(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={user}"))
                .arg(format!("--regid={user}"))
                .arg("--clear-groups")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
