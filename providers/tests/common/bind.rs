//! RFC 2136 on a real BIND primary (and its secondary), TSIG-signed.

use rotor_providers::DnsProvider;
use rotor_providers::rfc2136::Rfc2136;
use rotor_testkit::{Bind, Secondary, free_port};

use super::{Backend, rfc2136_adapter, scratch, wrong_tsig_key};

/// BIND, and the adapter pointed at its primary.
pub struct BindBackend {
    bind: Bind,
    adapter: Rfc2136,
    dir: tempfile::TempDir,
}

impl BindBackend {
    /// Starts BIND for example.com.
    pub fn start() -> Self {
        let dir = scratch();
        let bind = Bind::start(dir.path(), Secondary::Notified);
        let adapter = rfc2136_adapter("bind", bind.primary.port, &bind.tsig_file);
        Self { bind, adapter, dir }
    }
}

impl Backend for BindBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        let wrong = wrong_tsig_key(self.dir.path());
        Some(Box::new(rfc2136_adapter(
            "bind",
            self.bind.primary.port,
            &wrong,
        )))
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        Box::new(rfc2136_adapter("bind", free_port(), &self.bind.tsig_file))
    }

    fn plant(&self, name: &str, value: &str) {
        self.bind.plant(name, value);
    }

    fn stored(&self, name: &str) -> Vec<String> {
        self.bind.primary.txt(name)
    }
}
