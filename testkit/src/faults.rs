//! The fault-injecting proxy (`testkit/helpers/fault_proxy.py`) in front of an API double or a
//! DNS server: a seeded share of requests gets an error, a throttle, a hang or a reset.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{Running, free_port, spawn_ready};

/// What the proxy sits in front of.
#[derive(Clone, Copy, Debug)]
pub enum Upstream {
    /// Cloudflare's API (JSON errors, 429 with `Retry-After: 1`).
    Cloudflare,
    /// An AWS API such as Route53 (XML errors, 400 `Throttling`).
    Aws,
    /// A DNS server, over TCP and UDP (drops, lost answers, delays).
    Dns,
}

/// A running proxy, stopped when dropped.
pub struct FaultProxy {
    _child: Running,
    /// Its port on 127.0.0.1.
    pub port: u16,
    stats: PathBuf,
}

/// What the proxy saw.
#[derive(Debug)]
pub struct FaultStats {
    /// Requests (HTTP requests, DNS messages) it received.
    pub calls: u64,
    /// Faults it injected, by kind.
    pub faults: Vec<(String, u64)>,
}

impl FaultStats {
    /// Faults injected, all kinds together.
    pub fn injected(&self) -> u64 {
        self.faults.iter().map(|(_, n)| n).sum()
    }
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream` that faults `rate` of the requests, drawn from
    /// `seed`; its counts are kept in `dir`.
    pub fn start(kind: Upstream, upstream: u16, rate: f64, seed: u64, dir: &Path) -> Self {
        let port = free_port();
        let stats = dir.join(format!("faults-{port}.json"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("helpers/fault_proxy.py");
        let mut command = Command::new("python3");
        command.arg(script);
        match kind {
            Upstream::Cloudflare => command.args(["http", "--flavor", "cloudflare"]),
            Upstream::Aws => command.args(["http", "--flavor", "aws"]),
            Upstream::Dns => command.arg("dns"),
        };
        command
            .args(["--port", &port.to_string()])
            .args(["--upstream", &format!("127.0.0.1:{upstream}")])
            .args(["--rate", &rate.to_string(), "--seed", &seed.to_string()])
            .arg("--stats")
            .arg(&stats);
        let child = spawn_ready(command, "the fault proxy (python3)");
        Self {
            _child: child,
            port,
            stats,
        }
    }

    /// The proxy's URL, for HTTP.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests and faults so far.
    pub fn stats(&self) -> FaultStats {
        let text = std::fs::read_to_string(&self.stats).unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let faults = value["faults"]
            .as_object()
            .map(|faults| {
                faults
                    .iter()
                    .map(|(kind, n)| (kind.clone(), n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        FaultStats {
            calls: value["calls"].as_u64().unwrap_or(0),
            faults,
        }
    }
}
