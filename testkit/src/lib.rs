//! Test kit shared by rotor's crates: real BIND 9 servers on loopback (a primary and a
//! secondary fed by zone transfer), a real Exim signing into an SMTP sink ([`exim`]), a real
//! rspamd ([`rspamd`]), a real OpenDKIM ([`opendkim`]), a real Dovecot IMAP server
//! ([`dovecot`]), free ports, scratch directories OpenDKIM accepts, and polling helpers.
//! Every server binds only to 127.0.0.1 and is stopped when dropped.

pub mod cloudflare;
pub mod dmarc;
pub mod dovecot;
pub mod exim;
pub mod faults;
pub mod http;
pub mod knot;
pub mod opendkim;
pub mod pdns;
pub mod postgres;
pub mod provider;
pub mod route53;
pub mod rspamd;

pub use provider::ProviderUnderTest;

use std::collections::BTreeSet;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The zone every test uses.
pub const DOMAIN: &str = "example.com";

/// The zones the servers serve (the same contents, relative names).
pub const ZONES: [&str; 2] = ["example.com", "example.org"];

/// Writes a secret (a TSIG key, an API token) as an operator would: mode 0600 from the start.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(contents.as_ref()).unwrap();
}

/// A port free on 127.0.0.1 for both UDP and TCP, never handed out twice by this process (tests
/// run in parallel threads, and a server may take a moment to bind the port it was given).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Polls `done` until it holds, or panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The path of a system tool in the sbin or bin directories (or its bare name, for PATH).
pub fn sbin(tool: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin"] {
        let path = format!("{dir}/{tool}");
        if Path::new(&path).exists() {
            return path;
        }
    }
    panic!("{tool} is not installed: apt-get install bind9 bind9-dnsutils (.ci/run does)");
}

/// Runs `command` with `input` on its stdin and returns its output (stdout and stderr captured).
pub fn run_with_input(mut command: Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
    // A program that exits without reading its input is judged by its output.
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), input);
    child.wait_with_output().unwrap()
}

/// Adds a test double's `--zone` for each of `zones` and, with `mirror`, the `--mirror` BIND
/// primary and its `--mirror-key` (the double pushes every TXT change there).
pub fn double_zones(command: &mut Command, zones: &[&str], mirror: Option<&Bind>) {
    for zone in zones {
        command.args(["--zone", zone]);
    }
    if let Some(bind) = mirror {
        command
            .arg("--mirror")
            .arg(format!("127.0.0.1:{}", bind.primary.port));
        command.arg("--mirror-key").arg(&bind.tsig_file);
    }
}

/// A child process, killed and waited for when dropped (so a test leaves nothing running).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` (a helper that prints `ready` on its stdout once it serves) and waits for
/// that line; panics with `hint` if it does not come.
pub fn spawn_ready(mut command: Command, hint: &str) -> Running {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command:?}: {err} ({hint})"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready", "{command:?} did not start ({hint})");
    Running(child)
}

/// Starts `command` (a server) with its stdout and stderr in the file `log`, and waits (at most
/// 20 s) until `ready` holds; panics with `hint` if it cannot start, with the log if it does not
/// get ready. `what` names it in those messages.
pub fn start_server(
    mut command: Command,
    log: &Path,
    what: &str,
    hint: &str,
    mut ready: impl FnMut() -> bool,
) -> Running {
    let file = fs::File::create(log).unwrap();
    let child = command
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {what}: {err} ({hint})"));
    let server = Running(child);
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not start: {}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// `dig +short +norecurse @127.0.0.1 -p PORT ARGS`.
pub fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "+short",
            "+norecurse",
            "+time=1",
            "+tries=1",
            "@127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(args)
        .output()
        .expect("dig runs (apt-get install bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The TXT values at `name` on the server at 127.0.0.1:`port`, each with its strings joined.
pub fn dig_txt(port: u16, name: &str) -> Vec<String> {
    dig(port, &["TXT", name])
        .lines()
        .map(join_quoted)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One `named` process, killed when dropped.
pub struct Named {
    _child: Running,
    /// Its DNS port on 127.0.0.1.
    pub port: u16,
    /// Its rndc control port, when it has one.
    pub control: Option<u16>,
    dir: PathBuf,
}

impl Named {
    fn start(dir: &Path, conf: &str, port: u16, control: Option<u16>) -> Self {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("named.conf"), conf).unwrap();
        let mut named = Command::new(sbin("named"));
        named.args(["-g", "-c"]).arg(dir.join("named.conf"));
        // Ready when it answers over UDP and TCP (rotor sends updates over TCP); a resolver
        // is asked to recurse.
        let recurse = if conf.contains("recursion yes;") {
            "+recurse"
        } else {
            "+norecurse"
        };
        let child = start_server(
            named,
            &dir.join("named.log"),
            &format!("named on port {port}"),
            "apt-get install bind9",
            || {
                !dig(port, &[recurse, "SOA", DOMAIN]).is_empty()
                    && !dig(port, &[recurse, "+tcp", "SOA", DOMAIN]).is_empty()
            },
        );
        Self {
            _child: child,
            port,
            control,
            dir: dir.to_owned(),
        }
    }

    /// `dig +short +norecurse @127.0.0.1 -p PORT ARGS`.
    pub fn dig(&self, args: &[&str]) -> String {
        dig(self.port, args)
    }

    /// The TXT values at `name`, each with its strings joined.
    pub fn txt(&self, name: &str) -> Vec<String> {
        dig_txt(self.port, name)
    }

    /// `rndc retransfer DOMAIN` (secondaries started with a control channel).
    pub fn retransfer(&self) {
        let control = self.control.expect("started with a control channel");
        let status = Command::new(sbin("rndc"))
            .args(["-c"])
            .arg(self.dir.join("rndc.conf"))
            .args([
                "-s",
                "127.0.0.1",
                "-p",
                &control.to_string(),
                "retransfer",
                DOMAIN,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "rndc retransfer failed");
    }
}

/// `value` as a zone file or nsupdate writes a TXT value: strings of at most 255 bytes, each
/// quoted (`"abc" "def"`).
pub fn quote_txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The test zone (one of [`ZONES`]) `name` is in.
pub fn zone_of(name: &str) -> &'static str {
    ZONES
        .iter()
        .find(|zone| name.ends_with(*zone))
        .expect("a name in a test zone")
}

/// Adds the TXT record `name` = `value` (TTL 60) on the server at 127.0.0.1:`port` with
/// `nsupdate`, signed with the TSIG key in `tsig_file`: a record someone else than rotor made.
pub fn nsupdate_txt(port: u16, tsig_file: &Path, name: &str, value: &str) {
    let mut nsupdate = Command::new("nsupdate")
        .arg("-k")
        .arg(tsig_file)
        .stdin(Stdio::piped())
        .spawn()
        .expect("nsupdate runs (apt-get install bind9-dnsutils)");
    std::io::Write::write_all(
        &mut nsupdate.stdin.take().unwrap(),
        format!(
            "server 127.0.0.1 {port}\nzone {zone}\nupdate add {name} 60 TXT {quoted}\nsend\n",
            zone = zone_of(name),
            quoted = quote_txt(value)
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(nsupdate.wait().unwrap().success(), "nsupdate failed");
}

/// `"abc" "def"` (as dig, nsupdate, Route53 and Cloudflare write a TXT value), joined: `abcdef`.
pub fn join_quoted(line: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => inside = !inside,
            '\\' if inside => out.extend(chars.next()),
            c if inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// A primary and a secondary BIND for example.com, on loopback.
pub struct Bind {
    /// The primary, which takes updates signed with the TSIG key.
    pub primary: Named,
    /// The secondary, which follows the primary by NOTIFY and transfer.
    pub secondary: Named,
    /// The TSIG key file (BIND's format) that signs updates.
    pub tsig_file: PathBuf,
}

/// How the secondary follows the primary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Secondary {
    /// The primary sends NOTIFY; the secondary transfers at once (and asks the serial every
    /// few seconds, should a NOTIFY be lost).
    Notified,
    /// No NOTIFY and a one-hour refresh: the secondary lags until `retransfer`.
    Lagging,
}

/// The test zones' contents, as BIND and PowerDNS load them (relative names).
const ZONE: &str = "$TTL 60
@    IN SOA ns1.example.com. hostmaster.example.com. ( 1 3600 600 86400 60 )
@    IN NS  ns1.example.com.
ns1  IN A   127.0.0.1
@    IN TXT \"v=spf1 -all\"
other._domainkey IN TXT \"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDoperator\"
";

fn options(dir: &Path, port: u16, tsig_file: &Path) -> String {
    format!(
        "include \"{tsig}\";
include \"{stranger}\";
options {{
  directory \"{dir}\";
  pid-file \"{dir}/named.pid\";
  session-keyfile \"{dir}/session.key\";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify-source 127.0.0.1;
  transfer-source 127.0.0.1;
}};
",
        tsig = tsig_file.display(),
        stranger = tsig_file.with_file_name("stranger.key").display(),
        dir = dir.display()
    )
}

/// A `zone` statement for each of [`ZONES`], with `body` for its options.
fn zone_statements(body: impl Fn(&str) -> String) -> String {
    ZONES
        .iter()
        .map(|zone| format!("zone \"{zone}\" {{\n  {}\n}};\n", body(zone)))
        .collect()
}

impl Bind {
    /// Starts both servers under `dir`.
    pub fn start(dir: &Path, secondary: Secondary) -> Self {
        Self::with_records(dir, secondary, &[])
    }

    /// Starts both servers under `dir`, with `extra` records (zone, zone-file line) added to
    /// the zones (records of types rotor may not update, such as CNAME and DNAME).
    pub fn with_records(dir: &Path, secondary: Secondary, extra: &[(&str, &str)]) -> Self {
        fs::create_dir_all(dir).unwrap();
        let tsig_file = dir.join("tsig.key");
        let keygen = |name: &str| {
            let out = Command::new(sbin("tsig-keygen"))
                .args(["-a", "hmac-sha256", name])
                .output();
            out.unwrap().stdout
        };
        write_private(&tsig_file, keygen("rotor-key"));
        // A key the servers know but whose updates the zone's policy does not grant.
        write_private(&dir.join("stranger.key"), keygen("stranger-key"));
        let (port1, port2) = (free_port(), free_port());

        let primary_dir = dir.join("primary");
        fs::create_dir_all(&primary_dir).unwrap();
        for zone in ZONES {
            let mut contents = ZONE.to_string();
            for (_, line) in extra.iter().filter(|(name, _)| *name == zone) {
                contents.push_str(line);
                contents.push('\n');
            }
            fs::write(primary_dir.join(format!("{zone}.db")), contents).unwrap();
        }
        let notify = match secondary {
            Secondary::Notified => {
                format!("notify explicit; also-notify {{ 127.0.0.1 port {port2}; }};")
            }
            Secondary::Lagging => "notify no;".to_string(),
        };
        let zones = zone_statements(|zone| {
            format!(
                "type primary;
  file \"{zone}.db\";
  update-policy {{ grant rotor-key zonesub TXT; }};
  {notify}
  allow-transfer {{ 127.0.0.1; }};"
            )
        });
        let primary_conf = format!(
            "{}controls {{ }};\n{zones}",
            options(&primary_dir, port1, &tsig_file)
        );
        let primary = Named::start(&primary_dir, &primary_conf, port1, None);

        let secondary_dir = dir.join("secondary");
        fs::create_dir_all(&secondary_dir).unwrap();
        let control = free_port();
        fs::write(
            secondary_dir.join("rndc.conf"),
            format!(
                "include \"{}\";\noptions {{ default-key \"rotor-key\"; }};\n",
                tsig_file.display()
            ),
        )
        .unwrap();
        // A notified secondary also asks the primary's serial every few seconds: a NOTIFY lost
        // on a loaded machine then costs seconds, not the SOA's 10-minute retry.
        let poll = match secondary {
            Secondary::Notified => {
                "\n  min-refresh-time 1; max-refresh-time 3; min-retry-time 1; max-retry-time 3;"
            }
            Secondary::Lagging => "",
        };
        let zones = zone_statements(|zone| {
            format!(
                "type secondary;
  file \"{zone}.db\";
  primaries {{ 127.0.0.1 port {port1}; }};{poll}"
            )
        });
        let secondary_conf = format!(
            "{}controls {{ inet 127.0.0.1 port {control} allow {{ 127.0.0.1; }} keys {{ \"rotor-key\"; }}; }};\n{zones}",
            options(&secondary_dir, port2, &tsig_file)
        );
        let secondary = Named::start(&secondary_dir, &secondary_conf, port2, Some(control));
        Self {
            primary,
            secondary,
            tsig_file,
        }
    }

    /// Both servers.
    pub fn servers(&self) -> [&Named; 2] {
        [&self.primary, &self.secondary]
    }

    /// Adds the TXT record `name` = `value` on the primary with `nsupdate`, as someone else than
    /// rotor would.
    pub fn plant(&self, name: &str, value: &str) {
        nsupdate_txt(self.primary.port, &self.tsig_file, name, value);
    }

    /// Starts a recursive resolver (a third `named`, under `dir`) that asks the secondary for
    /// every name, as a receiver's resolver would: it follows CNAME and DNAME chains from one
    /// zone into another, which the authoritative servers (recursion off) do not.
    pub fn resolver(&self, dir: &Path) -> Named {
        let port = free_port();
        let conf = format!(
            "options {{
  directory \"{dir}\";
  pid-file \"{dir}/named.pid\";
  session-keyfile \"{dir}/session.key\";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion yes;
  allow-recursion {{ 127.0.0.1; }};
  dnssec-validation no;
  forward only;
  forwarders {{ 127.0.0.1 port {secondary}; }};
  query-source address 127.0.0.1;
}};
controls {{ }};
",
            dir = dir.display(),
            secondary = self.secondary.port
        );
        Named::start(dir, &conf, port, None)
    }
}

/// A scratch directory under a folder no other user can write to, up to the root, and that
/// every user can pass through: OpenDKIM (RequireSafeKeys) refuses keys below a group- or
/// world-writable directory such as /tmp, and Exim delivers as its own user. `target_tmp` (a
/// test's `CARGO_TARGET_TMPDIR`) if it is such a folder (a checkout under /tmp is not), else
/// /run, else $HOME.
pub fn scratch_in(target_tmp: &str) -> tempfile::TempDir {
    let safe = |dir: &Path| {
        dir.is_dir()
            && dir.ancestors().all(|d| {
                fs::metadata(d).is_ok_and(|m| {
                    let mode = m.permissions().mode();
                    mode & 0o022 == 0 && mode & 0o001 != 0
                })
            })
    };
    let target = PathBuf::from(target_tmp);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = [Some(target.clone()), Some(PathBuf::from("/run")), home];
    let base = candidates
        .into_iter()
        .flatten()
        .find(|dir| safe(dir))
        .unwrap_or(target);
    tempfile::Builder::new()
        .prefix("rotor-test-")
        .tempdir_in(base)
        .unwrap()
}

impl Bind {
    /// Every TXT record under `_domainkey.example.com` on the primary, by zone transfer:
    /// `(selector, joined value)`.
    pub fn dkim_records(&self) -> Vec<(String, String)> {
        let out = Command::new("dig")
            .args([
                "+nocmd",
                "+nostats",
                "+nocomments",
                "@127.0.0.1",
                "-p",
                &self.primary.port.to_string(),
                "AXFR",
                DOMAIN,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut records: Vec<(String, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let name = fields.next()?;
                let selector = name.strip_suffix("._domainkey.example.com.")?;
                let rest: Vec<&str> = fields.collect();
                (rest.get(2) == Some(&"TXT"))
                    .then(|| (selector.to_string(), join_quoted(&rest[3..].join(" "))))
            })
            .collect();
        records.sort();
        records
    }
}

/// Runs `command`, asserting it succeeds; its stdout, trimmed.
pub fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A private CA (`ca.pem`) and a server certificate it issued for `localhost` and 127.0.0.1
/// (`cert.pem`, key `key.pem`), in `dir`.
pub fn issue_certificate(dir: &Path) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-subj", "/CN=rotor test CA", "-days", "2"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
            ],
        ]
        .concat(),
    );
    fs::write(
        dir.join("cert.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "cert.ext",
        "-out",
        "cert.pem",
    ]);
    fs::set_permissions(dir.join("key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
}
