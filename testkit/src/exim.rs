//! A real Exim (Debian's `exim4-daemon-light`) that DKIM-signs every message it is given from
//! the lsearch table rotor's `exim` adapter writes, and hands it to a tiny SMTP sink
//! (`testkit/helpers/smtp_sink.py`) on loopback, so a test reads the message exactly as a
//! receiver would get it. Plus [`verify`], dkimpy's verdict on each signature against records
//! computed from the key files.
//!
//! Exim runs with a private configuration (`exim -C`) whose spool and logs are under the test's
//! directory; deliveries run as `Debian-exim`, as on a real Debian host, so the table and the
//! key files must be readable by that user (keys `root:Debian-exim 0640` in a
//! `root:Debian-exim 0750` directory).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{Running, free_port, run_with_input, spawn_ready, wait_for};

/// The envelope sender [`Exim::sign`] uses: its domain selects the table's row.
pub const SENDER: &str = "sender@example.com";

/// The envelope recipient of every submitted message.
pub const RECIPIENT: &str = "rcpt@example.net";

/// The user Debian's Exim delivers as.
pub const EXIM_USER: &str = "Debian-exim";

/// How long a delivery may take before a test gives up.
const DELIVERY: Duration = Duration::from_secs(30);

/// The transport's DKIM options: what rotor's documentation tells an Exim administrator to put
/// in the smtp transport, with `TABLE` the path of the file rotor writes.
pub fn dkim_options(table: &Path) -> String {
    let table = table.display();
    format!(
        "  dkim_domain = ${{lookup{{$sender_address_domain}}lsearch{{{table}}}{{$sender_address_domain}}}}
  dkim_selector = ${{lookup{{$dkim_domain}}lsearch{{{table}}}}}
  dkim_private_key = ${{lookup{{$dkim_selector._domainkey.$dkim_domain}}lsearch{{{table}}}{{$value}}{{0}}}}
"
    )
}

/// The Exim binary (`/usr/sbin/exim4` on Debian).
pub fn binary() -> PathBuf {
    ["/usr/sbin/exim4", "/usr/sbin/exim", "/usr/bin/exim"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("exim is not installed: apt-get install exim4-daemon-light (tests/run.sh does)")
}

/// `(uid, gid)` of a system user, from /etc/passwd.
pub fn user_ids(user: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user) && fields.len() > 3)
        .map(|fields| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        .unwrap_or_else(|| panic!("no user {user}: is exim4 installed?"))
}

/// `chown root:Debian-exim` and `chmod mode`: how keys and their directory are laid out for
/// Exim on Debian.
pub fn give_to_exim_group(path: &Path, mode: u32) {
    let (_, gid) = user_ids(EXIM_USER);
    std::os::unix::fs::chown(path, Some(0), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A private Exim configuration and the SMTP sink it delivers to; a daemon too once
/// [`Exim::start_daemon`] was called. Processes are killed and waited for when dropped.
pub struct Exim {
    dir: PathBuf,
    conf: PathBuf,
    _sink: Running,
    sink_dir: PathBuf,
    /// The sink's port on 127.0.0.1.
    pub sink_port: u16,
    /// The port the daemon listens on (on 127.0.0.1), once started.
    pub daemon_port: u16,
    daemon: Option<Running>,
}

fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("helpers")
        .join(name)
}

impl Exim {
    /// A configuration under `dir` whose one route sends every message through an smtp
    /// transport, signing with the options of [`dkim_options`] for `table`, to a new sink.
    pub fn new(dir: &Path, table: &Path) -> Self {
        Self::with_options(dir, table, "")
    }

    /// As [`Exim::new`], with `extra` lines added to the transport (e.g. `dkim_strict = true`).
    pub fn with_options(dir: &Path, table: &Path, extra: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        // Deliveries run as Debian-exim: it must reach the spool, the logs and the table.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(closed) = dir
            .ancestors()
            .find(|d| fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        {
            panic!(
                "{} is not searchable by others: Exim delivers as {EXIM_USER}",
                closed.display()
            );
        }
        let (uid, gid) = user_ids(EXIM_USER);
        for sub in ["spool", "log"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).unwrap();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        let sink_port = free_port();
        let daemon_port = free_port();
        let conf = dir.join("exim.conf");
        let text = format!(
            "# A private Exim for rotor's tests: everything goes to the sink on 127.0.0.1:{sink_port}.
exim_user = {EXIM_USER}
exim_group = {EXIM_USER}
keep_environment =
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
primary_hostname = signer.test
qualify_domain = example.com
local_interfaces = 127.0.0.1
daemon_smtp_ports = {daemon_port}
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept hosts = 127.0.0.1
  deny

begin routers
everything:
  driver = accept
  transport = dkim_smtp

begin transports
dkim_smtp:
  driver = smtp
  hosts = 127.0.0.1
  allow_localhost
  port = {sink_port}
{options}{extra}

begin retry
# A deferred message stays queued (no bounce) for the test to see.
* * F,1d,1h
",
            dir = dir.display(),
            options = dkim_options(table),
        );
        fs::write(&conf, text).unwrap();
        // Exim refuses a configuration others may write.
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();

        let sink_dir = dir.join("received");
        let mut sink = Command::new("python3");
        sink.arg(helper("smtp_sink.py"))
            .args(["--port", &sink_port.to_string(), "--dir"])
            .arg(&sink_dir);
        let sink = spawn_ready(sink, "the SMTP sink");
        Self {
            dir: dir.to_owned(),
            conf,
            _sink: sink,
            sink_dir,
            sink_port,
            daemon_port,
            daemon: None,
        }
    }

    /// The configuration file (`exim -C` it).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Submits `message` (LF or CRLF line ends) from [`SENDER`] and delivers it at once
    /// (`exim -odi`); the message as the sink received it (CRLF line ends), with Exim's
    /// `DKIM-Signature` header(s) first. Panics, with Exim's log, if it was not delivered.
    pub fn sign(&self, message: &str) -> String {
        self.try_sign(SENDER, message).unwrap_or_else(|| {
            panic!(
                "Exim did not deliver the message:\n{}",
                self.mainlog().unwrap_or_default()
            )
        })
    }

    /// As [`Exim::sign`] from `sender`; `None` if Exim kept the message queued (deferred).
    pub fn try_sign(&self, sender: &str, message: &str) -> Option<String> {
        let (received, queued) = (self.received().len(), self.queued());
        let mut exim = Command::new(binary());
        exim.arg("-C")
            .arg(&self.conf)
            .args(["-odi", "-f", sender, RECIPIENT]);
        let out = run_with_input(exim, message.as_bytes());
        assert!(
            out.status.success(),
            "exim failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.mainlog().unwrap_or_default()
        );
        wait_for("Exim to deliver or queue the message", DELIVERY, || {
            self.received().len() > received || self.queued() > queued
        });
        self.newest(received)
    }

    /// Starts `exim -bdf` listening on 127.0.0.1:[`Exim::daemon_port`]: one long-running
    /// process, as on a real host.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        let log = fs::File::create(self.dir.join("daemon.out")).unwrap();
        let child = Command::new(binary())
            .arg("-C")
            .arg(&self.conf)
            .arg("-bdf")
            .arg("-oP")
            .arg(self.dir.join("exim.pid"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("exim runs");
        self.daemon = Some(Running(child));
        let port = self.daemon_port;
        wait_for("the Exim daemon to listen", DELIVERY, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// The daemon's pid, once started.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|daemon| daemon.0.id())
    }

    /// Sends `message` from [`SENDER`] to the running daemon over SMTP and returns it as the
    /// sink received it.
    pub fn sign_via_daemon(&self, message: &str) -> String {
        assert!(self.daemon.is_some(), "start_daemon first");
        let received = self.received().len();
        let stream = TcpStream::connect(("127.0.0.1", self.daemon_port)).unwrap();
        stream.set_read_timeout(Some(DELIVERY)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(
                line.starts_with(code),
                "expected {code}, Exim said {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect("220");
        let mut send = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        send("EHLO client.test");
        expect("250");
        send(&format!("MAIL FROM:<{SENDER}>"));
        expect("250");
        send(&format!("RCPT TO:<{RECIPIENT}>"));
        expect("250");
        send("DATA");
        expect("354");
        for line in message.lines() {
            let stuffed = if line.starts_with('.') { "." } else { "" };
            send(&format!("{stuffed}{line}"));
        }
        send(".");
        expect("250");
        send("QUIT");
        expect("221");
        wait_for("the daemon to deliver the message", DELIVERY, || {
            self.received().len() > received
        });
        self.newest(received).unwrap()
    }

    /// The newest message the sink received, if it received more than `before`.
    fn newest(&self, before: usize) -> Option<String> {
        let files = self.received();
        (files.len() > before).then(|| fs::read_to_string(files.last().unwrap()).unwrap())
    }

    /// Where the sink writes each message it receives (`NNNNNN.eml`).
    pub fn sink_dir(&self) -> &Path {
        &self.sink_dir
    }

    /// Every message the sink received, oldest first.
    pub fn received(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.sink_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// How many messages are in Exim's queue (`exim -bpc`).
    pub fn queued(&self) -> usize {
        let out = Command::new(binary())
            .arg("-C")
            .arg(&self.conf)
            .arg("-bpc")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Exim's main log so far.
    pub fn mainlog(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("log/mainlog")).ok()
    }

    /// Exim's panic log so far, without the line every `-C` run writes there when a delivery
    /// process re-executes Exim as Debian-exim ("exim user lost privilege for using -C
    /// option"), which is not an error here.
    pub fn paniclog(&self) -> String {
        fs::read_to_string(self.dir.join("log/paniclog"))
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains("lost privilege for using -C option"))
            .map(|line| format!("{line}\n"))
            .collect()
    }
}

/// One `DKIM-Signature` header and dkimpy's verdict on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `a=`, e.g. `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// Whether it verifies against the record computed from the key file given for
    /// `<s>._domainkey.<d>`.
    pub verified: bool,
}

/// Every `DKIM-Signature` of `message`, in header order, checked by dkimpy
/// (`testkit/helpers/dkim_verify.py`; `pip install dkimpy pynacl`) against records computed
/// from `keys`: `(selector, domain, private key file)`. A signature whose name is not in `keys`
/// does not verify.
pub fn verify(message: &str, keys: &[(&str, &str, &Path)]) -> Vec<Signature> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(message.as_bytes()).unwrap();
    let mut command = Command::new("python3");
    command.arg(helper("dkim_verify.py")).arg(file.path());
    for (selector, domain, key) in keys {
        command.arg(format!("{selector}._domainkey.{domain}={}", key.display()));
    }
    let out = command.output().expect("python3 runs dkim_verify.py");
    assert!(
        out.status.success(),
        "dkim_verify.py failed (pip install dkimpy pynacl?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| Signature {
            domain: field(v, "d"),
            selector: field(v, "s"),
            algorithm: field(v, "a"),
            verified: v["ok"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// The `DKIM-Signature` headers of `message`, each unfolded onto one line.
pub fn signature_headers(message: &str) -> Vec<String> {
    let head = message
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let mut headers: Vec<String> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push_str(line);
            }
        } else {
            headers.push(line.to_string());
        }
    }
    headers
        .into_iter()
        .filter(|h| h.to_ascii_lowercase().starts_with("dkim-signature:"))
        .collect()
}
