//! A real Knot DNS server on loopback (Debian's `knot`): the test zones from zone files, a TSIG
//! key made with `keymgr`, an ACL that lets only that key update TXT records, its rundir and
//! storage in a scratch directory, listening on 127.0.0.1 only. Stopped when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{
    Running, ZONES, dig, dig_txt, free_port, nsupdate_txt, sbin, start_server, write_private,
};

/// The name of the TSIG key rotor signs with.
pub const KEY_NAME: &str = "rotor-key";

const ZONE: &str = "$TTL 60
@    IN SOA ns1 hostmaster ( 1 3600 600 86400 60 )
@    IN NS  ns1
ns1  IN A   127.0.0.1
@    IN TXT \"v=spf1 -all\"
other._domainkey IN TXT \"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDoperator\"
";

/// One `knotd`, killed when dropped.
pub struct Knot {
    _child: Running,
    /// Its DNS port on 127.0.0.1 (UDP and TCP).
    pub port: u16,
    /// The TSIG key in BIND's format (`key "rotor-key" { ... };`, mode 0600), as rotor reads it.
    pub tsig_file: PathBuf,
}

/// The secret of a `keymgr -t NAME hmac-sha256` answer.
fn secret(keymgr: &str) -> String {
    keymgr
        .lines()
        .find_map(|line| line.trim().strip_prefix("secret:"))
        .expect("keymgr printed a secret")
        .trim()
        .to_string()
}

impl Knot {
    /// Starts Knot under `dir` serving [`ZONES`].
    pub fn start(dir: &Path) -> Self {
        let (run, storage) = (dir.join("run"), dir.join("storage"));
        for folder in [&run, &storage] {
            fs::create_dir_all(folder).unwrap();
        }
        for zone in ZONES {
            fs::write(
                storage.join(format!("{zone}.zone")),
                format!("$ORIGIN {zone}.\n{ZONE}"),
            )
            .unwrap();
        }
        let out = Command::new(sbin("keymgr"))
            .args(["-t", KEY_NAME, "hmac-sha256"])
            .output()
            .expect("keymgr runs (apt-get install knot)");
        assert!(out.status.success(), "keymgr -t: {out:?}");
        let secret = secret(&String::from_utf8_lossy(&out.stdout));
        let tsig_file = dir.join("tsig.key");
        write_private(
            &tsig_file,
            format!(
                "key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"
            ),
        );
        let port = free_port();
        let zones: String = ZONES
            .iter()
            .map(|zone| format!("  - domain: {zone}\n    acl: rotor-update\n"))
            .collect();
        let conf = dir.join("knot.conf");
        write_private(
            &conf,
            format!(
                "server:
    rundir: \"{run}\"
    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
database:
    storage: \"{storage}\"
control:
    listen: \"{run}/knot.sock\"
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: rotor-update
    key: {KEY_NAME}
    action: update
    update-type: TXT
template:
  - id: default
    storage: \"{storage}\"
    file: \"%s.zone\"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
zone:
{zones}",
                run = run.display(),
                storage = storage.display(),
            ),
        );
        let mut knotd = Command::new(sbin("knotd"));
        knotd.arg("-c").arg(&conf);
        let child = start_server(
            knotd,
            &dir.join("knot.log"),
            "knotd",
            "apt-get install knot",
            || {
                ZONES.iter().all(|zone| {
                    !dig(port, &["SOA", zone]).is_empty()
                        && !dig(port, &["+tcp", "SOA", zone]).is_empty()
                })
            },
        );
        Self {
            _child: child,
            port,
            tsig_file,
        }
    }

    /// The TXT values at `name`, each with its strings joined, as the server answers them.
    pub fn txt(&self, name: &str) -> Vec<String> {
        dig_txt(self.port, name)
    }

    /// Adds the TXT record `name` = `value` with `nsupdate`, as someone else than rotor would.
    pub fn plant(&self, name: &str, value: &str) {
        nsupdate_txt(self.port, &self.tsig_file, name, value);
    }
}
