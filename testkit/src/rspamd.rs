//! A real rspamd 3.4 (Debian package `rspamd`) run privately on loopback, so tests can see what
//! it signs. `testkit/tests/rspamd.rs` checks every fact below against the installed package.
//!
//! # How it runs
//!
//! `rspamd -f -u root -g root -c /etc/rspamd/rspamd.conf --var=LOCAL_CONFDIR=DIR/conf
//! --var=RUNDIR=DIR/run --var=DBDIR=DIR/db --var=LOGDIR=DIR/log`: the stock configuration, with
//! `DIR/conf` standing for `/etc/rspamd` in every `local.d/` and `override.d/` include, and every
//! file rspamd writes (control socket, caches, history, rrd, log, temp files) under `DIR`. `-f`
//! keeps the main process in the foreground as our child (its pid is [`Rspamd::pid`]; in the
//! foreground rspamd writes no pid file, `-p` or not). As root, rspamd refuses to start without
//! a user for its workers (`detect_priv: cannot run rspamd workers as root user, please add -u
//! and -g options ... or specify --insecure flag`, exit 1); `-u root -g root` (or `-i`) lets the
//! workers run as root and read keys in a root-only scratch directory (checked by hand; with
//! `-u _rspamd -g _rspamd`, Debian's service user, a root-only key is unreadable: see fact f).
//!
//! `DIR/conf/local.d/` holds:
//! - `dkim_signing.conf`: exactly the caller's text;
//! - `worker-normal.inc`, `worker-controller.inc`, `worker-proxy.inc`: `bind_socket` on
//!   127.0.0.1 ports from [`free_port`] (the stock ones bind `localhost:11332-11334`), the
//!   proxy's upstream pointed at the normal worker; the fuzzy worker stays disabled (`count = -1`)
//!   so nothing listens anywhere but on loopback ([`Rspamd::listening`]);
//! - `options.inc`: `dns { nameserver = ["127.0.0.1:PORT"]; }` (a closed port, so every lookup
//!   fails at once, or a test's DNS server), `tempdir`, and `url_tld` = a short public-suffix
//!   list. The stock list (9 600 suffixes) is compiled to a hyperscan database at every start
//!   with an empty cache: 15-20 s on two cores; the short list takes milliseconds, and it is
//!   only used to find a domain's eSLD (`use_esld`), which it still does for `.com`, `.org`,
//!   `.test` and the other suffixes in [`TLDS`];
//! - `fuzzy_check.conf`: `enabled = false;` (it resolves rspamd.com's servers at start).
//!
//! Redis-backed modules (bayes, greylist, ratelimit, ...) disable themselves when no server is
//! configured; the maps rspamd fetches from maps.rspamd.com fail in the background. Startup on
//! two cores takes about 2 s. An `hs_helper` process still compiles the regexp rules to hyperscan
//! in the background (about 5 s of one core; `disable_hyperscan = true` does not stop it in 3.4);
//! signing does not wait for it.
//!
//! Messages are submitted to the normal worker's HTTP protocol (`POST /checkv2`) as outbound
//! mail: `User:` and `From:` are the header From address, `IP: 127.0.0.1`. The reply's
//! `dkim-signature` field (a string, or an array when there are several) holds the header values
//! rspamd would have a milter insert; [`Rspamd::sign`] prepends them as `DKIM-Signature:` headers.
//! The proxy worker speaks milter on [`Rspamd::milter_port`]: by hand, `miltertest -D port=PORT
//! -D domain=example.com -s testkit/scripts/probe.lua` (OpenDKIM's probe, no auth macro, client
//! 127.0.0.1) gets the same signature back, but each probe takes about 5 s.
//!
//! A configuration that does not parse makes rspamd exit 1 at start (`rspamd_config_read: failed
//! to load config: ucl parser error: ...`); [`Rspamd::start`] panics with the log, as it does when
//! rspamd does not answer within a minute.
//!
//! # Facts (rspamd 3.4, Debian 12), each checked by a test unless marked "by hand"
//!
//! a. One selector per domain through a map: `dkim_signing.conf`
//!    ```text
//!    path = "DIR/keys/$domain.$selector.key";
//!    selector_map = "DIR/selectors.map";
//!    ```
//!    with map lines `example.com sel1`. The defaults do the rest (`sign_authenticated = true`,
//!    `use_domain = "header"`, `allow_username_mismatch = false` is satisfied because the user is
//!    the From address). By hand, with these defaults: a user `alice@example.com` is signed from
//!    any IP; a user `alice` (no domain) or `alice@other.org` is not (that needs
//!    `allow_username_mismatch = true`); no user at all is signed from 127.0.0.1 (`sign_local`:
//!    loopback is local) and not from 192.0.2.1. Replacing the map by rename (`example.com sel2`, with the new key at a
//!    new path `example.com.sel2.key`) applies with no signal and no reload, but asynchronously:
//!    file maps are watched with libev's `ev_stat` (inotify), which schedules the reread
//!    (`rspamd_map_on_stat: old mtime is ... new mtime is ...`, then `rereading map file`), so a
//!    message scanned right after the rename may still be signed with the old selector; measured:
//!    0 or 1 such message, the new selector within 3-90 ms. Without inotify the fallback is a
//!    stat poll every `map_watch_interval * map_file_watch_multiplier` = 5 min * 0.1 = 30 s. So
//!    the old key must stay readable until the new selector is seen (or for 30 s and more).
//! b. Dual signing, RSA + Ed25519, in a file included from `dkim_signing.conf`
//!    (`.include "DIR/domains.conf"`), holding
//!    ```text
//!    domain { example.com { selectors [
//!      { path = "DIR/keys/example.com.rsa1.key"; selector = "rsa1"; },
//!      { path = "DIR/keys/example.com.ed1.key"; selector = "ed1"; }
//!    ] } }
//!    ```
//!    is configuration, not a map: a change is ignored until SIGHUP (`kill -HUP MAIN`; messages
//!    scanned between the rewrite and the signal get the old set of signatures); after it,
//!    every message carries two DKIM-Signature headers, `a=rsa-sha256` and `a=ed25519-sha256`.
//!    A reload forks new workers and ends the old ones (~1 s); a config that does not parse is
//!    refused (`reread_config: cannot parse new config file, revert to old one`) and the old
//!    workers keep signing.
//! c. Key files: RSA PKCS#8 PEM (`openssl genpkey -algorithm RSA`), PKCS#1 PEM (`-----BEGIN RSA
//!    PRIVATE KEY-----`, `openssl genrsa -traditional`) and DER are accepted. Ed25519: base64 of
//!    the 32-byte seed, base64 of the 64-byte seed||public key (`rspamadm dkim_keygen -t ed25519`)
//!    and the raw 32-byte seed are accepted; PKCS#8 PEM (`openssl genpkey -algorithm ed25519`) is
//!    NOT: no signature, log `cannot load dkim key ...: cannot extract rsa key from evp key`.
//! d. Every signature verifies (dkimpy, `testkit/scripts/dkim_verify_keys.py`) against
//!    `v=DKIM1; k=rsa; p=<base64 DER SubjectPublicKeyInfo>` or `v=DKIM1; k=ed25519; p=<base64
//!    raw public key>` computed from the key file.
//! e. `rspamadm --var=LOCAL_CONFDIR=DIR/conf --var=DBDIR=DIR/db --var=RUNDIR=DIR/run
//!    --var=LOGDIR=DIR/log configtest -c /etc/rspamd/rspamd.conf` checks the private config:
//!    exit 0 `syntax OK`, exit 1 `syntax BAD` with the parser's message. (rspamadm takes
//!    `--var=K=V` only; rspamd takes both forms.) It does not open key files: a missing key passes.
//! f. A missing key file, a directory in its place or a file that is not a key: rspamd still
//!    answers, without a signature (no `DKIM_SIGNED` symbol, no `dkim-signature`), and logs
//!    `dkim_module_load_key_format: cannot load dkim key PATH: cannot stat key file: 'PATH' No such
//!    file or directory` (resp. `cannot map key file: 'PATH' Success`, `cannot parse raw private
//!    key: ... expecting an rsa key`). Root ignores permission bits, so the test cannot make a key
//!    unreadable; by hand, with workers as `_rspamd` and a root 0600 key: no signature,
//!    `cannot map key file: 'PATH' Permission denied`. Other domains keep being signed.
//! g. `check_pubkey = true; allow_pubkey_mismatch = false;` (with [`Rspamd::start_with_dns`]
//!    pointed at the test BIND): rspamd looks up `SELECTOR._domainkey.DOMAIN` before every
//!    signature and signs only if the record holds the key's public half. No record: no
//!    signature, `public key for domain example.com/ed1 is not found: ..., skip signing`; another
//!    key: `lua_dkim_sign_handler: public key for example.com/ed2 does not match private key:
//!    pubkey does not match private key, skip signing`. No negative caching: the message right
//!    after the record is published is signed. A safety net against a swap before the record is
//!    visible to rspamd's resolver.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::free_port;

/// Public suffixes in the short `url_tld` list (see the module documentation).
pub const TLDS: &[&str] = &[
    "com",
    "net",
    "org",
    "edu",
    "gov",
    "io",
    "de",
    "fr",
    "nl",
    "uk",
    "co.uk",
    "arpa",
    "test",
    "example",
    "invalid",
    "localhost",
];

/// How long rspamd may take to start or reload.
const STARTUP: Duration = Duration::from_secs(60);

/// The rspamd binary, or a panic telling how to install it.
fn binary(tool: &str) -> &'static str {
    let path = match tool {
        "rspamd" => "/usr/bin/rspamd",
        _ => "/usr/bin/rspamadm",
    };
    assert!(
        Path::new(path).exists(),
        "{tool} is not installed: apt-get install rspamd (tests/run.sh does)"
    );
    path
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename, so a
/// reader (rspamd's map watcher) never sees a half-written file.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) {
    let mut name = path.file_name().expect("a file name").to_owned();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    fs::write(&tmp, contents).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A running rspamd (main process and its workers), stopped when dropped.
pub struct Rspamd {
    child: Child,
    dir: PathBuf,
    /// The normal worker (HTTP protocol: `/checkv2`, `/ping`) on 127.0.0.1.
    pub port: u16,
    /// The controller worker (web UI and `/stat`, password `q1` from the stock config).
    pub controller_port: u16,
    /// The proxy worker in milter mode (an MTA's `smtpd_milters = inet:127.0.0.1:PORT`).
    pub milter_port: u16,
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // SIGTERM first: the main process ends its workers and waits for them. SIGKILL would
        // leave them running.
        let workers = self.workers();
        signal("TERM", self.pid());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in workers {
            if fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"rspamd")) {
                signal("KILL", pid);
            }
        }
    }
}

/// `kill -SIG PID`.
fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

impl Rspamd {
    /// Starts rspamd with all its state under `dir` and `dkim_signing` as
    /// `local.d/dkim_signing.conf`; DNS lookups fail at once (a closed loopback port).
    pub fn start(dir: &Path, dkim_signing: &str) -> Self {
        Self::start_with_dns(dir, dkim_signing, None)
    }

    /// [`Rspamd::start`], with rspamd's resolver pointed at a DNS server on `127.0.0.1:dns` (for
    /// `check_pubkey = true`).
    pub fn start_with_dns(dir: &Path, dkim_signing: &str, dns: Option<u16>) -> Self {
        let dir = dir.to_owned();
        let local = dir.join("conf/local.d");
        for sub in ["conf/local.d", "run", "db", "log", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (port, controller_port, milter_port) = (free_port(), free_port(), free_port());
        let dns = dns.unwrap_or_else(free_port);
        let tld = dir.join("conf/tld.dat");
        fs::write(&tld, TLDS.join("\n") + "\n").unwrap();
        fs::write(local.join("dkim_signing.conf"), dkim_signing).unwrap();
        fs::write(
            local.join("options.inc"),
            format!(
                "dns {{ nameserver = [\"127.0.0.1:{dns}\"]; }}\ntempdir = \"{tmp}\";\nurl_tld = \"{tld}\";\n",
                tmp = dir.join("tmp").display(),
                tld = tld.display()
            ),
        )
        .unwrap();
        fs::write(
            local.join("worker-normal.inc"),
            format!("bind_socket = \"127.0.0.1:{port}\";\n"),
        )
        .unwrap();
        fs::write(
            local.join("worker-controller.inc"),
            format!("bind_socket = \"127.0.0.1:{controller_port}\";\n"),
        )
        .unwrap();
        fs::write(
            local.join("worker-proxy.inc"),
            format!(
                "bind_socket = \"127.0.0.1:{milter_port}\";\n\
                 upstream \"local\" {{ default = yes; hosts = \"127.0.0.1:{port}\"; }}\n"
            ),
        )
        .unwrap();
        fs::write(local.join("fuzzy_check.conf"), "enabled = false;\n").unwrap();

        let console = fs::File::create(dir.join("log/console.log")).unwrap();
        let child = Command::new(binary("rspamd"))
            .args(["-f", "-u", "root", "-g", "root", "-c"])
            .arg("/etc/rspamd/rspamd.conf")
            .args(Self::vars(&dir))
            .stdin(Stdio::null())
            .stdout(Stdio::from(console.try_clone().unwrap()))
            .stderr(Stdio::from(console))
            .spawn()
            .expect("rspamd starts");
        let mut rspamd = Self {
            child,
            dir,
            port,
            controller_port,
            milter_port,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = rspamd.child.try_wait() {
                panic!("rspamd exited ({status}) at start:\n{}", rspamd.log());
            }
            let up = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
            if rspamd.ping() && up(rspamd.controller_port) && up(rspamd.milter_port) {
                break;
            }
            if start.elapsed() > STARTUP {
                panic!(
                    "rspamd did not answer within {STARTUP:?}:\n{}",
                    rspamd.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        rspamd
    }

    /// The `--var` arguments that move rspamd's local config and state under `dir`.
    fn vars(dir: &Path) -> Vec<String> {
        [
            ("LOCAL_CONFDIR", "conf"),
            ("RUNDIR", "run"),
            ("DBDIR", "db"),
            ("LOGDIR", "log"),
        ]
        .iter()
        .map(|(var, sub)| format!("--var={var}={}", dir.join(sub).display()))
        .collect()
    }

    /// The directory everything lives in (a good place for keys and maps).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `local.d/dkim_signing.conf`: rewrite it (then [`Rspamd::reload`]) to change the config.
    pub fn dkim_signing_conf(&self) -> PathBuf {
        self.dir.join("conf/local.d/dkim_signing.conf")
    }

    /// The main process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// rspamd's log so far (its own log file, then anything it printed).
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join("log").join(name));
        format!(
            "{}{}",
            read("rspamd.log").unwrap_or_default(),
            read("console.log").unwrap_or_default()
        )
    }

    /// Whether the normal worker answers `GET /ping` with `pong`.
    fn ping(&self) -> bool {
        self.request("GET", "/ping", &[], b"")
            .is_ok_and(|(status, body)| status == 200 && body.trim() == "pong")
    }

    /// One HTTP/1.1 request to the normal worker: (status, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_string()))
    }

    /// Scans `message` (bare `\n` turned into CRLF) as outbound mail from an authenticated user
    /// (the header From address) at 127.0.0.1, and returns rspamd's `/checkv2` reply: `symbols`
    /// (`DKIM_SIGNED` with options `domain:s=selector`), `dkim-signature`, ...
    pub fn scan(&self, message: &str) -> Value {
        self.try_scan(message)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// [`Rspamd::scan`], with an error instead of a panic when rspamd does not answer (while it
    /// reloads, say).
    pub fn try_scan(&self, message: &str) -> Result<Value, String> {
        let message = crlf(message);
        let from = header_address(&message, "from").unwrap_or_default();
        let mut headers = vec![("IP", "127.0.0.1"), ("User", &from), ("From", &from)];
        let to = header_address(&message, "to");
        if let Some(to) = &to {
            headers.push(("Rcpt", to));
        }
        let (status, body) = self
            .request("POST", "/checkv2", &headers, message.as_bytes())
            .map_err(|e| format!("rspamd /checkv2: {e}"))?;
        if status != 200 {
            return Err(format!("rspamd /checkv2 answered {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("rspamd /checkv2 {e}: {body}"))
    }

    /// `message` (with CRLF line ends) preceded by the DKIM-Signature header(s) rspamd adds when
    /// it is submitted as in [`Rspamd::scan`], in rspamd's order; unchanged if rspamd does not
    /// sign it.
    pub fn sign(&self, message: &str) -> String {
        self.try_sign(message)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    /// [`Rspamd::sign`], with an error when rspamd does not answer.
    pub fn try_sign(&self, message: &str) -> Result<String, String> {
        let reply = self.try_scan(message)?;
        let signatures = match reply.get("dkim-signature") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|v| v.as_str().expect("a signature string").to_string())
                .collect(),
            _ => Vec::new(),
        };
        let mut signed: String = signatures
            .iter()
            .map(|value| format!("DKIM-Signature: {value}\r\n"))
            .collect();
        signed.push_str(&crlf(message));
        Ok(signed)
    }

    /// Sends SIGHUP (configuration reload) and waits until the reloaded workers answer; panics
    /// with the log if rspamd refuses the new configuration.
    pub fn reload(&self) {
        if let Err(e) = self.try_reload() {
            panic!("{e}\n{}", self.log());
        }
    }

    /// SIGHUP, then wait until every worker was replaced and the new normal worker answers
    /// (`Ok`), or rspamd logs that it keeps the old configuration (`Err` with that line).
    pub fn try_reload(&self) -> Result<(), String> {
        let log_file = self.dir.join("log/rspamd.log");
        let seen = fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0) as usize;
        let old = self.workers();
        signal("HUP", self.pid());
        let start = Instant::now();
        loop {
            let log = fs::read(&log_file).unwrap_or_default();
            let new = String::from_utf8_lossy(log.get(seen..).unwrap_or_default());
            if let Some(line) = new.lines().find(|l| l.contains("revert to old one")) {
                return Err(line.to_string());
            }
            let now = self.workers();
            if !now.is_empty() && now.iter().all(|pid| !old.contains(pid)) && self.ping() {
                return Ok(());
            }
            if start.elapsed() > STARTUP {
                return Err(format!("rspamd did not reload within {STARTUP:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `rspamadm configtest` on this instance's configuration: `Ok` ("syntax OK") or `Err` with
    /// its output.
    pub fn configtest(&self) -> Result<(), String> {
        let out = Command::new(binary("rspamadm"))
            .args(Self::vars(&self.dir))
            .args(["configtest", "-c", "/etc/rspamd/rspamd.conf"])
            .output()
            .expect("rspamadm runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.contains("syntax OK") {
            Ok(())
        } else {
            Err(text)
        }
    }

    /// The main process's children (the workers), from /proc.
    fn workers(&self) -> Vec<u32> {
        let main = self.pid();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // pid (comm) state ppid ...: comm may hold spaces and parentheses.
                let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
                after.split_whitespace().nth(1) == Some(main.to_string().as_str())
            })
            .collect()
    }

    /// Every address a process of this rspamd listens on: TCP sockets in LISTEN state and UDP
    /// sockets not connected to a peer, from /proc/net.
    pub fn listening(&self) -> Vec<SocketAddr> {
        let mut inodes = Vec::new();
        for pid in std::iter::once(self.pid()).chain(self.workers()) {
            let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(target) = fs::read_link(fd.path()) {
                    let target = target.to_string_lossy().to_string();
                    if let Some(inode) = target
                        .strip_prefix("socket:[")
                        .and_then(|s| s.strip_suffix(']'))
                    {
                        inodes.push(inode.to_string());
                    }
                }
            }
        }
        let mut found = Vec::new();
        for (table, tcp) in [
            ("tcp", true),
            ("tcp6", true),
            ("udp", false),
            ("udp6", false),
        ] {
            let text = fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(remote), Some(state), Some(inode)) =
                    (fields.get(1), fields.get(2), fields.get(3), fields.get(9))
                else {
                    continue;
                };
                let open = if tcp {
                    *state == "0A"
                } else {
                    remote.ends_with(":0000")
                };
                if open && inodes.iter().any(|i| i == inode) {
                    found.extend(proc_net_address(local));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }
}

/// `0100007F:1F90` (or the 32-hex-digit IPv6 form) from /proc/net/*.
fn proc_net_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).map(u32::from_be))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match words[..] {
        [v4] => IpAddr::V4(Ipv4Addr::from(v4.to_be_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// `text` with every line ending CRLF.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// The address in a header (`Name <a@b>` or `a@b`) of the message's head, if present.
fn header_address(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or("");
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line);
                continue;
            }
            break;
        }
        if let Some((field, rest)) = line.split_once(':')
            && field.trim().eq_ignore_ascii_case(name)
        {
            value = Some(rest.to_string());
        }
    }
    let value = value?;
    let address = match (value.rfind('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.trim(),
    };
    Some(address.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_proc_net() {
        assert_eq!(
            proc_net_address("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            proc_net_address("00000000000000000000000001000000:0035"),
            Some("[::1]:53".parse().unwrap())
        );
    }

    #[test]
    fn header_addresses() {
        let message =
            "From: Alice\r\n <alice@example.com>\r\nTo: bob@example.net\r\n\r\nFrom: x@y\r\n";
        assert_eq!(
            header_address(message, "from").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            header_address(message, "TO").as_deref(),
            Some("bob@example.net")
        );
        assert_eq!(header_address(message, "cc"), None);
    }
}
