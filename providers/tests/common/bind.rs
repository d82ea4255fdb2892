//! RFC 2136 on a real BIND primary (and its secondary), TSIG-signed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_providers::DnsProvider;
use rotor_providers::rfc2136::{Rfc2136, Rfc2136Config, TsigKey};
use rotor_testkit::{Bind, Secondary, ZONES, free_port};

use super::{Backend, scratch};

/// BIND, and the adapter pointed at its primary.
pub struct BindBackend {
    bind: Bind,
    adapter: Rfc2136,
    _dir: tempfile::TempDir,
}

fn adapter(port: u16, key: &Path) -> Rfc2136 {
    Rfc2136::new(Rfc2136Config {
        name: "bind".into(),
        server: format!("127.0.0.1:{port}").parse().unwrap(),
        tsig: Some(TsigKey::from_file(key).unwrap()),
        timeout: Duration::from_secs(3),
    })
}

impl BindBackend {
    /// Starts BIND for example.com.
    pub fn start() -> Self {
        let dir = scratch();
        let bind = Bind::start(dir.path(), Secondary::Notified);
        let adapter = adapter(bind.primary.port, &bind.tsig_file);
        Self {
            bind,
            adapter,
            _dir: dir,
        }
    }
}

impl Backend for BindBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        let wrong = self._dir.path().join("wrong.key");
        std::fs::write(&wrong, "key \"rotor-key\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"; };").unwrap();
        Some(Box::new(adapter(self.bind.primary.port, &wrong)))
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        Box::new(adapter(free_port(), &self.bind.tsig_file))
    }

    fn plant(&self, name: &str, value: &str) {
        let zone = ZONES
            .iter()
            .find(|zone| name.ends_with(*zone))
            .expect("a name in a test zone");
        let mut nsupdate = Command::new("nsupdate")
            .arg("-k")
            .arg(&self.bind.tsig_file)
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
            self.bind.primary.port
        )
        .unwrap();
        assert!(nsupdate.wait().unwrap().success(), "nsupdate failed");
    }

    fn stored(&self, name: &str) -> Vec<String> {
        self.bind.primary.txt(name)
    }
}
