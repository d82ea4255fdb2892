//! Cloudflare on the stateful test double (`tests/doubles/cloudflare.py`) that validates every
//! request and response against Cloudflare's own OpenAPI schema.

use std::time::Duration;

use rotor_providers::DnsProvider;
use rotor_providers::cloudflare::{Cloudflare, CloudflareConfig, Pace};
use rotor_testkit::cloudflare::{CloudflareDouble, TOKEN};
use rotor_testkit::{free_port, join_quoted};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Backend;

/// The double, and the adapter pointed at it.
pub struct CloudflareBackend {
    double: CloudflareDouble,
    adapter: Cloudflare,
}

/// A pace fit for tests: no spacing, quick backoff, short timeout.
pub fn quick_pace() -> Pace {
    Pace {
        min_interval: Duration::ZERO,
        retries: 3,
        backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
        ..Pace::default()
    }
}

/// An adapter for the double on `port` with `token`.
pub fn adapter(port: u16, token: &str, pace: Pace) -> Cloudflare {
    Cloudflare::new(CloudflareConfig {
        name: "cloudflare".into(),
        token: Zeroizing::new(token.to_string()),
        zone_id: None,
        api_url: format!("http://127.0.0.1:{port}/client/v4"),
        pace,
    })
    .unwrap()
}

impl CloudflareBackend {
    /// Starts the double with zones example.com and example.org.
    pub fn start() -> Self {
        let double = CloudflareDouble::start(&["example.com", "example.org"], None);
        let adapter = adapter(double.port, TOKEN, quick_pace());
        Self { double, adapter }
    }

    /// The double's port.
    pub fn port(&self) -> u16 {
        self.double.port
    }

    /// The token the double accepts.
    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// A control request to the double.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.double.control(method, path, body)
    }

    /// The zone's stored records, as the double holds them.
    pub fn records(&self, zone: &str) -> Vec<Value> {
        self.double.records(zone)
    }

    /// API calls so far, by route.
    pub fn calls(&self) -> Value {
        self.double.calls()
    }
}

/// `"abc" "def"` → `abcdef`; plain content as it is.
fn joined(content: &str) -> String {
    if content.trim_start().starts_with('"') {
        join_quoted(content)
    } else {
        content.to_string()
    }
}

impl Backend for CloudflareBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>> {
        Some(Box::new(adapter(
            self.double.port,
            "not-the-token",
            quick_pace(),
        )))
    }

    fn unreachable(&self) -> Box<dyn DnsProvider> {
        Box::new(adapter(free_port(), TOKEN, quick_pace()))
    }

    fn plant(&self, name: &str, value: &str) {
        let zone = if name.ends_with("example.org") {
            "example.org"
        } else {
            "example.com"
        };
        self.control(
            "POST",
            "/__records",
            Some(json!({"zone": zone, "name": name, "type": "TXT", "content": value, "comment": "added by hand"})),
        );
    }

    fn verify(&self) {
        assert_eq!(
            self.double.violations(),
            Vec::<Value>::new(),
            "requests that break Cloudflare's schema"
        );
    }

    fn stored(&self, name: &str) -> Vec<String> {
        let zone = if name.ends_with("example.org") {
            "example.org"
        } else {
            "example.com"
        };
        self.records(zone)
            .iter()
            .filter(|r| r["type"] == "TXT" && r["name"] == name)
            .map(|r| joined(r["content"].as_str().unwrap_or_default()))
            .collect()
    }
}
