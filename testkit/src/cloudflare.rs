//! The Cloudflare API double (`providers/tests/doubles/cloudflare.py`), started on loopback and
//! checked against Cloudflare's own schema in `shared/cloudflare/` beside the repository.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{
    Bind, ProviderUnderTest, Running, double_zones, free_port, spawn_ready, write_private,
};

/// The one token the double accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// A running double, stopped when dropped.
pub struct CloudflareDouble {
    _child: Running,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Cloudflare's schema, in `shared/` beside the repository.
fn schema() -> PathBuf {
    let schema = repository().join("../shared/cloudflare/cloudflare-dns.openapi.json");
    assert!(
        schema.exists(),
        "Cloudflare's schema is expected at {}",
        schema.display()
    );
    schema
}

impl CloudflareDouble {
    /// Starts the double for `zones`; with `mirror`, every TXT change is pushed to that BIND.
    pub fn start(zones: &[&str], mirror: Option<&Bind>) -> Self {
        let port = free_port();
        let mut command = Command::new("python3");
        command
            .arg(repository().join("providers/tests/doubles/cloudflare.py"))
            .args(["--port", &port.to_string(), "--token", TOKEN])
            .arg("--schema")
            .arg(schema());
        double_zones(&mut command, zones, mirror);
        let child = spawn_ready(command, "the Cloudflare double: pip install jsonschema");
        Self {
            _child: child,
            port,
        }
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    /// A control request: `method path` with an optional JSON body; the answer must be 200.
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

    /// Schema violations (and failed mirror pushes) the double saw.
    pub fn violations(&self) -> Vec<Value> {
        self.control("GET", "/__violations", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A zone's stored records, as the double holds them.
    pub fn records(&self, zone: &str) -> Vec<Value> {
        self.control("GET", &format!("/__records?zone={zone}"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// API calls so far: `{"total": n, "by_route": {...}}`.
    pub fn calls(&self) -> Value {
        self.control("GET", "/__calls", None)
    }
}

/// Cloudflare's API at `api_url` (the double, or a proxy in front of it), its token in a file
/// written in `dir` (0600).
pub fn provider(api_url: &str, dir: &Path) -> ProviderUnderTest {
    let token = dir.join("cloudflare.token");
    write_private(&token, format!("{TOKEN}\n"));
    ProviderUnderTest::new("cloudflare")
        .set("api_url", api_url)
        .set("api_token_file", token.display())
}
