//! RFC 2136 on a real Knot DNS, TSIG-signed, through rotor's own adapter.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_providers::DnsProvider;
use rotor_providers::rfc2136::{Rfc2136, Rfc2136Config, TsigKey};
use rotor_testkit::knot::Knot;
use rotor_testkit::{ZONES, free_port, write_private};

use super::{Backend, scratch};

/// Knot, and the adapter pointed at it.
pub struct KnotBackend {
    knot: Knot,
    adapter: Rfc2136,
    dir: tempfile::TempDir,
}

fn adapter(port: u16, key: &Path) -> Rfc2136 {
    Rfc2136::new(Rfc2136Config {
        name: "knot".into(),
        server: format!("127.0.0.1:{port}").parse().unwrap(),
        tsig: Some(TsigKey::from_file(key).unwrap()),
        timeout: Duration::from_secs(3),
    })
}

impl KnotBackend {
    /// Starts Knot for example.com and example.org.
    pub fn start() -> Self {
        let dir = scratch();
        let knot = Knot::start(&dir.path().join("knot"));
        let adapter = adapter(knot.port, &knot.tsig_file);
        Self { knot, adapter, dir }
    }
}

impl Backend for KnotBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        let wrong = self.dir.path().join("wrong.key");
        write_private(
            &wrong,
            "key \"rotor-key\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"; };",
        );
        Some(Box::new(adapter(self.knot.port, &wrong)))
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        Box::new(adapter(free_port(), &self.knot.tsig_file))
    }

    fn plant(&self, name: &str, value: &str) {
        let zone = ZONES
            .iter()
            .find(|zone| name.ends_with(*zone))
            .expect("a name in a test zone");
        let mut nsupdate = Command::new("nsupdate")
            .arg("-k")
            .arg(&self.knot.tsig_file)
            .stdin(Stdio::piped())
            .spawn()
            .expect("nsupdate runs (apt-get install bind9-dnsutils)");
        let quoted = value
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(
            nsupdate.stdin.take().unwrap(),
            "server 127.0.0.1 {}\nzone {zone}\nupdate add {name} 60 TXT {quoted}\nsend",
            self.knot.port
        )
        .unwrap();
        assert!(nsupdate.wait().unwrap().success(), "nsupdate failed");
    }

    fn stored(&self, name: &str) -> Vec<String> {
        self.knot.txt(name)
    }
}
