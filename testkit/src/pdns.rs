//! A real PowerDNS Authoritative server on loopback (Debian's `pdns-server` with
//! `pdns-backend-sqlite3`): a sqlite database made from the schema the package ships, the test
//! zones loaded with `pdnsutil`, DNS and the HTTP API on 127.0.0.1 only, the API key in a file
//! (never on a command line). Stopped when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{
    Running, ZONE, ZONES, dig, dig_txt, free_port, quote_txt, sbin, start_server, write_private,
    zone_of,
};

/// Where Debian puts the sqlite3 schema (the first that exists is used).
const SCHEMAS: [&str; 2] = [
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
];

/// The API key the harness gives PowerDNS.
pub const API_KEY: &str = "rotor-test-pdns-api-key";

/// One `pdns_server`, killed when dropped.
pub struct Pdns {
    _child: Running,
    /// Its DNS port on 127.0.0.1 (UDP and TCP).
    pub port: u16,
    /// Its HTTP API's base URL (`http://127.0.0.1:PORT`).
    pub api_url: String,
    /// A file holding the API key (mode 0600), as an operator keeps it.
    pub api_key_file: PathBuf,
    dir: PathBuf,
}

impl Pdns {
    /// Starts PowerDNS under `dir` serving [`ZONES`].
    pub fn start(dir: &Path) -> Self {
        fs::create_dir_all(dir).unwrap();
        let schema = SCHEMAS.iter().find(|path| Path::new(path).exists()).expect(
            "the PowerDNS sqlite3 schema: apt-get install pdns-backend-sqlite3 (tests/run.sh does)",
        );
        let db = dir.join("pdns.sqlite3");
        let out = crate::run_with_input(
            {
                let mut sqlite = Command::new("sqlite3");
                sqlite.arg(&db);
                sqlite
            },
            &fs::read(schema).unwrap(),
        );
        assert!(out.status.success(), "sqlite3: {out:?}");
        let (port, web) = (free_port(), free_port());
        let secrets = dir.join("secret.d");
        fs::create_dir_all(&secrets).unwrap();
        write_private(&secrets.join("api.conf"), format!("api-key={API_KEY}\n"));
        let api_key_file = dir.join("api-key");
        write_private(&api_key_file, API_KEY);
        fs::write(
            dir.join("pdns.conf"),
            format!(
                "launch=gsqlite3
gsqlite3-database={db}
local-address=127.0.0.1
local-port={port}
api=yes
webserver=yes
webserver-address=127.0.0.1
webserver-port={web}
webserver-allow-from=127.0.0.0/8
socket-dir={dir}
include-dir={secrets}
daemon=no
guardian=no
disable-syslog=yes
write-pid=no
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
zone-cache-refresh-interval=0
consistent-backends=yes
",
                db = db.display(),
                dir = dir.display(),
                secrets = secrets.display()
            ),
        )
        .unwrap();
        let pdns = |dir: &Path| -> Command {
            let mut command = Command::new(sbin("pdnsutil"));
            command.arg(format!("--config-dir={}", dir.display()));
            command
        };
        for zone in ZONES {
            let file = dir.join(format!("{zone}.zone"));
            fs::write(&file, format!("$ORIGIN {zone}.\n{ZONE}")).unwrap();
            let out = pdns(dir)
                .args(["load-zone", zone])
                .arg(&file)
                .output()
                .unwrap();
            assert!(out.status.success(), "pdnsutil load-zone {zone}: {out:?}");
        }
        let mut server = Command::new(sbin("pdns_server"));
        server.arg(format!("--config-dir={}", dir.display()));
        let api_url = format!("http://127.0.0.1:{web}");
        let child = start_server(
            server,
            &dir.join("pdns.log"),
            "pdns_server",
            "apt-get install pdns-server pdns-backend-sqlite3",
            || {
                !dig(port, &["SOA", ZONES[0]]).is_empty()
                    && !dig(port, &["+tcp", "SOA", ZONES[0]]).is_empty()
                    && api_answers(&api_url)
            },
        );
        Self {
            _child: child,
            port,
            api_url,
            api_key_file,
            dir: dir.to_owned(),
        }
    }

    /// Adds a TXT record behind the API's back (`pdnsutil add-record`), as someone else would.
    pub fn plant(&self, name: &str, value: &str) {
        let zone = zone_of(name);
        let quoted = quote_txt(value);
        let relative = name
            .strip_suffix(zone)
            .map_or("@", |head| head.trim_end_matches('.'));
        let relative = if relative.is_empty() { "@" } else { relative };
        let out = Command::new(sbin("pdnsutil"))
            .arg(format!("--config-dir={}", self.dir.display()))
            .args(["add-record", zone, relative, "TXT", "60", &quoted])
            .output()
            .unwrap();
        assert!(out.status.success(), "pdnsutil add-record: {out:?}");
    }

    /// The TXT values at `name`, each with its strings joined, as the server answers them.
    pub fn txt(&self, name: &str) -> Vec<String> {
        dig_txt(self.port, name)
    }
}

/// Whether the HTTP API at `api_url` answers with the key.
fn api_answers(api_url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-H", "@-"])
        .arg(format!("{api_url}/api/v1/servers/localhost"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "X-API-Key: {API_KEY}")?;
            child.wait()
        })
        .is_ok_and(|status| status.success())
}
