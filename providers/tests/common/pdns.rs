//! PowerDNS Authoritative on loopback, through the `dns-update` family.

use rotor_providers::DnsProvider;
use rotor_providers::adapter::ProviderSettings;
use rotor_providers::dnsupdate::{DnsUpdate, Host, Settings};
use rotor_testkit::pdns::Pdns;
use rotor_testkit::{ZONES, free_port, write_private};

use super::{Backend, scratch};

/// PowerDNS, and the adapter pointed at its API.
pub struct PdnsBackend {
    pdns: Pdns,
    adapter: DnsUpdate,
    dir: tempfile::TempDir,
}

fn adapter(endpoint: &str, key_file: &std::path::Path) -> DnsUpdate {
    let settings = Settings {
        provider: Host::PowerDns,
        zones: ZONES.iter().map(|zone| zone.to_string()).collect(),
        api_token_env: None,
        api_token_file: Some(key_file.to_owned()),
        api_secret_env: None,
        api_secret_file: None,
        endpoint: Some(endpoint.to_string()),
        server_id: None,
        account_id: None,
    };
    settings.validate().unwrap();
    DnsUpdate::from_settings(&settings, "pdns").unwrap()
}

impl PdnsBackend {
    /// Starts PowerDNS for example.com and example.org.
    pub fn start() -> Self {
        let dir = scratch();
        let pdns = Pdns::start(&dir.path().join("pdns"));
        let adapter = adapter(&pdns.api_url, &pdns.api_key_file);
        Self { pdns, adapter, dir }
    }
}

impl Backend for PdnsBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        let wrong = self.dir.path().join("wrong-key");
        write_private(&wrong, "not-the-api-key");
        Some(Box::new(adapter(&self.pdns.api_url, &wrong)))
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        let endpoint = format!("http://127.0.0.1:{}", free_port());
        Box::new(adapter(&endpoint, &self.pdns.api_key_file))
    }

    fn plant(&self, name: &str, value: &str) {
        self.pdns.plant(name, value);
    }

    fn stored(&self, name: &str) -> Vec<String> {
        self.pdns.txt(name)
    }
}
