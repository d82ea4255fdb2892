//! RFC 2136 on a real Knot DNS, TSIG-signed, through rotor's own adapter.

use rotor_providers::DnsProvider;
use rotor_providers::rfc2136::Rfc2136;
use rotor_testkit::free_port;
use rotor_testkit::knot::Knot;

use super::{Backend, rfc2136_adapter, scratch, wrong_tsig_key};

/// Knot, and the adapter pointed at it.
pub struct KnotBackend {
    knot: Knot,
    adapter: Rfc2136,
    dir: tempfile::TempDir,
}

impl KnotBackend {
    /// Starts Knot for example.com and example.org.
    pub fn start() -> Self {
        let dir = scratch();
        let knot = Knot::start(&dir.path().join("knot"));
        let adapter = rfc2136_adapter("knot", knot.port, &knot.tsig_file);
        Self { knot, adapter, dir }
    }
}

impl Backend for KnotBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        let wrong = wrong_tsig_key(self.dir.path());
        Some(Box::new(rfc2136_adapter("knot", self.knot.port, &wrong)))
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        Box::new(rfc2136_adapter("knot", free_port(), &self.knot.tsig_file))
    }

    fn plant(&self, name: &str, value: &str) {
        self.knot.plant(name, value);
    }

    fn stored(&self, name: &str) -> Vec<String> {
        self.knot.txt(name)
    }
}
