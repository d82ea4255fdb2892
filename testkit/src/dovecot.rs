//! A real Dovecot 2.3 (Debian's `dovecot-imapd`) on 127.0.0.1, private to a test: IMAP on a
//! free port, optionally implicit TLS (a certificate issued by a private test CA) on another, a
//! passwd-file of users, and a Maildir per user under the test's directory. Stopped (master and
//! every child) when dropped.
//!
//! # How it runs
//!
//! `dovecot -F -c DIR/dovecot.conf` (`-F`: in the foreground, as our child), the only config
//! file (no `/etc/dovecot` include), with `base_dir`, `state_dir`, `log_path` and the mail
//! under `DIR`. As root it is started as `nobody:nogroup` (`setpriv`), and as any other user as
//! that user: a master that is not root cannot change uid, so `default_internal_user`,
//! `default_login_user` and the static userdb's `uid=`/`gid=` all name the running user, and
//! `chroot =` is cleared for `imap-login` and `anvil` (else `anvil: Fatal: chroot(DIR/run/empty)
//! failed: Operation not permitted`). `DIR` (mode 0700) and all in it belong to that user.
//! Passwords are `{PLAIN}` in `DIR/passwd`; loopback counts as secure, so LOGIN is allowed
//! without TLS (`disable_plaintext_auth = no` also allows it on the TLS-less port of a TLS
//! server). With [`Config::tls`], `ssl = yes` with `DIR/cert.pem` (for `localhost` and
//! `127.0.0.1`, issued by `DIR/ca.pem`, see [`Dovecot::ca`]) and `inet_listener imaps` on
//! [`Dovecot::tls_port`]; STARTTLS is then offered on [`Dovecot::port`] too.
//!
//! [`Config::imap_capability`] replaces the capabilities announced after login (Dovecot's
//! `imap_capability`), to play a server without `MOVE`.
//!
//! What a mail client would see ([`Dovecot::count`], [`Dovecot::seen`]) and messages arriving
//! ([`Dovecot::append`]) go through python's imaplib (`testkit/helpers/imap_tool.py`), not
//! through rotor's client.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{
    Running, free_port, issue_certificate, run, run_with_input, start_server, write_private,
};

/// The user every Dovecot has (the `rua=` mailbox's login).
pub const USER: &str = "dmarc@example.com";

/// [`USER`]'s password.
pub const PASSWORD: &str = "imap-secret-Zq7";

/// How long Dovecot may take to stop.
const STOP: Duration = Duration::from_secs(20);

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Also listen with implicit TLS (on [`Dovecot::tls_port`]) and offer STARTTLS.
    pub tls: bool,
    /// Users besides [`USER`]: `(login, password)`.
    pub users: Vec<(String, String)>,
    /// The capabilities announced after login, in place of Dovecot's (e.g. without `MOVE`).
    pub imap_capability: Option<String>,
}

/// A running Dovecot, stopped when dropped.
pub struct Dovecot {
    server: Option<Running>,
    dir: PathBuf,
    users: Vec<(String, String)>,
    /// Plain IMAP (and STARTTLS, with TLS on) on 127.0.0.1.
    pub port: u16,
    /// Implicit TLS on 127.0.0.1, with [`Config::tls`].
    pub tls_port: Option<u16>,
}

fn binary() -> &'static str {
    let path = "/usr/sbin/dovecot";
    assert!(
        Path::new(path).exists(),
        "dovecot is not installed: apt-get install dovecot-imapd (tests/run.sh does)"
    );
    path
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("helpers")
        .join("imap_tool.py")
}

/// Runs `command`, panicking with its output unless it succeeds.
impl Dovecot {
    /// Plain IMAP under `dir` (created), with [`USER`].
    pub fn start(dir: &Path) -> Self {
        Self::with_config(dir, &Config::default())
    }

    /// Plain IMAP and implicit TLS under `dir`, with [`USER`].
    pub fn start_tls(dir: &Path) -> Self {
        Self::with_config(
            dir,
            &Config {
                tls: true,
                ..Config::default()
            },
        )
    }

    /// Dovecot as `config` says, under `dir` (created).
    pub fn with_config(dir: &Path, config: &Config) -> Self {
        binary();
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        let root = fs::metadata(dir).unwrap().uid() == 0;
        // The user Dovecot runs as (and owns everything under `dir`).
        let (user, group) = if root {
            ("nobody".to_string(), "nogroup".to_string())
        } else {
            (
                run(Command::new("id").arg("-un")),
                run(Command::new("id").arg("-gn")),
            )
        };
        for sub in ["run", "state", "log", "mail"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut users = vec![(USER.to_string(), PASSWORD.to_string())];
        users.extend(config.users.iter().cloned());
        let passwd: String = users
            .iter()
            .map(|(login, password)| format!("{login}:{{PLAIN}}{password}\n"))
            .collect();
        write_private(&dir.join("passwd"), passwd);

        let port = free_port();
        let tls_port = config.tls.then(free_port);
        let d = dir.display();
        let ssl = if config.tls {
            issue_certificate(dir);
            format!("ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n")
        } else {
            "ssl = no\n".to_string()
        };
        let capability = config
            .imap_capability
            .as_ref()
            .map(|caps| format!("protocol imap {{\n  imap_capability = {caps}\n}}\n"))
            .unwrap_or_default();
        let conf = format!(
            "protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log/dovecot.log
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{d}/mail/%u
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
{capability}",
            tls_port = tls_port.unwrap_or(0),
        );
        fs::write(dir.join("dovecot.conf"), conf).unwrap();
        if root {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{group}"))
                .arg(dir));
        }

        let mut command = if root {
            let mut command = Command::new("setpriv");
            command
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(binary());
            command
        } else {
            Command::new(binary())
        };
        command.arg("-F").arg("-c").arg(dir.join("dovecot.conf"));
        let greets = |port: u16| {
            TcpStream::connect(("127.0.0.1", port)).is_ok_and(|stream| {
                let mut line = String::new();
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("* OK")
            })
        };
        // Ready when the plain port greets and the TLS port accepts connections. What goes
        // wrong at start (a config error) is on stderr; later, in the log.
        let server = start_server(
            command,
            &dir.join("log/stderr"),
            "dovecot",
            "apt-get install dovecot-imapd",
            || {
                greets(port)
                    && tls_port.is_none_or(|tls| TcpStream::connect(("127.0.0.1", tls)).is_ok())
            },
        );
        Self {
            server: Some(server),
            dir: dir.to_owned(),
            users,
            port,
            tls_port,
        }
    }

    /// The master process's pid.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().expect("running").0.id()
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log/dovecot.log")).unwrap_or_default()
    }

    /// The private CA's certificate (PEM) that issued the server's, with [`Config::tls`].
    pub fn ca(&self) -> PathBuf {
        assert!(self.tls_port.is_some(), "started without TLS");
        self.dir.join("ca.pem")
    }

    fn password(&self, user: &str) -> &str {
        self.users
            .iter()
            .find(|(login, _)| login == user)
            .map(|(_, password)| password.as_str())
            .unwrap_or_else(|| panic!("{user} is not a user of this Dovecot"))
    }

    /// Runs the imaplib helper as `user`.
    fn tool(&self, user: &str, action: &str, mailbox: &str, input: &[u8]) -> String {
        let mut command = Command::new("python3");
        command
            .arg(helper())
            .args([&self.port.to_string(), user, action, mailbox])
            .env("IMAP_PASSWORD", self.password(user));
        let out = run_with_input(command, input);
        assert!(
            out.status.success(),
            "imap_tool.py {action} {mailbox} as {user} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Delivers `message` into `user`'s `mailbox` (IMAP APPEND; the mailbox is created if
    /// missing), unseen.
    pub fn append(&self, user: &str, mailbox: &str, message: &[u8]) {
        self.tool(user, "append", mailbox, message);
    }

    /// How many messages `user`'s `mailbox` holds (0 if it does not exist).
    pub fn count(&self, user: &str, mailbox: &str) -> usize {
        self.tool(user, "count", mailbox, b"").parse().unwrap()
    }

    /// How many of them are flagged `\Seen`.
    pub fn seen(&self, user: &str, mailbox: &str) -> usize {
        self.tool(user, "seen", mailbox, b"").parse().unwrap()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // SIGTERM: the master stops its children (imap-login, auth, imap, log, ...) and exits;
        // the SIGKILL of `Running` would leave them to notice on their own.
        let _ = Command::new("kill")
            .args(["-TERM", &server.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < STOP && !matches!(server.0.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
