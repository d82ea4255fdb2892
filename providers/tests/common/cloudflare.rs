//! Cloudflare on a stateful test double (`tests/doubles/cloudflare.py`) that validates every
//! request and response against Cloudflare's own OpenAPI schema (`../shared/cloudflare/`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rotor_providers::DnsProvider;
use rotor_providers::cloudflare::{Cloudflare, CloudflareConfig, Pace};
use rotor_testkit::free_port;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Backend;

const TOKEN: &str = "test-token-0123456789";

/// The double, and the adapter pointed at it.
pub struct CloudflareBackend {
    child: Child,
    port: u16,
    adapter: Cloudflare,
}

impl Drop for CloudflareBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Cloudflare's schema, in `shared/` beside the repository.
fn schema() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema = root.join("shared/cloudflare/cloudflare-dns.openapi.json");
    assert!(
        schema.exists(),
        "Cloudflare's schema is expected at {}",
        schema.display()
    );
    schema
}

/// A pace fit for tests: no spacing, quick backoff, short timeout.
pub fn quick_pace() -> Pace {
    Pace {
        min_interval: Duration::ZERO,
        retries: 3,
        backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
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
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/cloudflare.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--token",
                TOKEN,
                "--zone",
                "example.com",
                "--zone",
                "example.org",
            ])
            .arg("--schema")
            .arg(schema())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the Cloudflare double");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the double did not start");
        let adapter = adapter(port, TOKEN, quick_pace());
        Self {
            child,
            port,
            adapter,
        }
    }

    /// The double's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The token the double accepts.
    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// A control request to the double: `method path` with an optional JSON body.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{method} {path}: {head}"
        );
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    /// Schema violations the double saw.
    pub fn violations(&self) -> Vec<Value> {
        self.control("GET", "/__violations", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The zone's stored records, as the double holds them.
    pub fn records(&self, zone: &str) -> Vec<Value> {
        self.control("GET", &format!("/__records?zone={zone}"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// API calls so far, by route.
    pub fn calls(&self) -> Value {
        self.control("GET", "/__calls", None)
    }
}

/// `"abc" "def"` → `abcdef`; plain content as it is.
fn joined(content: &str) -> String {
    if !content.trim_start().starts_with('"') {
        return content.to_string();
    }
    let mut out = String::new();
    let mut inside = false;
    let mut chars = content.chars();
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

impl Backend for CloudflareBackend {
    fn adapter(&self) -> &dyn DnsProvider {
        &self.adapter
    }

    fn bad_credentials(&self) -> Box<dyn DnsProvider> {
        Box::new(adapter(self.port, "not-the-token", quick_pace()))
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
            self.violations(),
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
