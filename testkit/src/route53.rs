//! Route53 as moto emulates it (`testkit/doubles/route53.py`), started on loopback with hosted
//! zones made, and optionally mirrored into a [`Bind`] that plays Route53's nameservers.

use std::path::Path;
use std::process::Command;

use crate::{Bind, ProviderUnderTest, Running, double_zones, free_port, spawn_ready};

/// A running moto server, stopped when dropped.
pub struct MotoRoute53 {
    _child: Running,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl MotoRoute53 {
    /// Starts moto with a public hosted zone for each of `zones`; with `mirror`, every TXT change
    /// is pushed to that BIND.
    pub fn start(zones: &[&str], mirror: Option<&Bind>) -> Self {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("doubles/route53.py");
        let mut command = Command::new("python3");
        command.arg(script).args(["--port", &port.to_string()]);
        double_zones(&mut command, zones, mirror);
        let child = spawn_ready(
            command,
            "Route53's emulation: python3 -m pip install 'moto[server]' (tests/run.sh does)",
        );
        Self {
            _child: child,
            port,
        }
    }

    /// The endpoint rotor is pointed at (`AWS_ENDPOINT_URL_ROUTE_53`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Route53's API at `endpoint` (moto, or a proxy in front of it), through the standard AWS
/// variables: the SDK's credential chain and endpoint override, and no profile files.
pub fn provider(endpoint: &str) -> ProviderUnderTest {
    ProviderUnderTest::new("route53")
        .env("AWS_ENDPOINT_URL_ROUTE_53", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}
