//! What the Route53 test files use: DKIM-sized values, an SDK config with test credentials, the
//! adapter around it, an interceptor that counts API calls by operation, and moto_server.

#![allow(dead_code)]

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{HostedZoneConfig, Vpc, VpcRegion};

use aws_sdk_route53::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_route53::config::{
    BehaviorVersion, Builder, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_route53::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use rotor_providers::route53::{Route53, Route53Config};

/// The zone the tests work in.
pub const ZONE: &str = "example.com";

/// The name of a DKIM selector in [`ZONE`].
pub const SELECTOR: &str = "rotor20261123._domainkey.example.com";

/// A DKIM record with `base64_len` characters of key: 392 for RSA-2048, 736 for RSA-4096.
pub fn dkim_value(base64_len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let key: String = (0..base64_len)
        .map(|n| char::from(ALPHABET[(n * 7 + 3) % ALPHABET.len()]))
        .collect();
    format!("v=DKIM1; k=rsa; h=sha256; p={key}")
}

/// An SDK config as a test account uses it: region us-east-1, access key `testing`.
pub fn sdk_config() -> Builder {
    Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
}

/// The adapter around `sdk`, with every other setting at its default.
pub fn adapter(sdk: Builder) -> Route53 {
    Route53::from_sdk_config(Route53Config::new("route53-test"), sdk)
}

/// Counts the API calls made through a client, by operation name (`ChangeResourceRecordSets`),
/// one per attempt: a retried call counts once per try.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    /// How many attempts of `operation` were sent.
    pub fn count(&self, operation: &str) -> usize {
        let calls = self.0.lock().unwrap();
        calls.iter().filter(|call| *call == operation).count()
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or_else(|| "unknown".to_string(), |meta| meta.name().to_string());
        self.0.lock().unwrap().push(operation);
        Ok(())
    }
}

/// One `moto_server`, killed when dropped.
pub struct Moto {
    child: Child,
    /// Its endpoint URL.
    pub url: String,
    log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto on a free port and returns once it accepts connections.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(File::options().append(true).open(log.path()).unwrap())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run moto_server ({err}): python3 -m pip install 'moto[server]' \
                     (tests/run.sh does)"
                )
            });
        let mut moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!("moto_server exited ({status}): {}", moto.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not listen within 30 s: {}",
                moto.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A client of this server, as a test's own tool (not the adapter's).
    pub fn client(&self) -> Client {
        Client::from_conf(sdk_config().endpoint_url(&self.url).build())
    }

    /// The adapter pointed at this server, counting its calls in `calls`.
    pub fn adapter(&self, calls: &Calls) -> Route53 {
        adapter(
            sdk_config()
                .endpoint_url(&self.url)
                .interceptor(calls.clone()),
        )
    }
}

/// Creates a hosted zone (private in a made-up VPC if `private`) and returns its id.
pub async fn create_zone(client: &Client, name: &str, private: bool) -> String {
    let mut request = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("{name}-{private}"));
    if private {
        request = request
            .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
            .vpc(
                Vpc::builder()
                    .vpc_region(VpcRegion::UsEast1)
                    .vpc_id("vpc-0rotor")
                    .build(),
            );
    }
    let zone = request.send().await.unwrap();
    let id = zone.hosted_zone().unwrap().id();
    id.trim_start_matches("/hostedzone/").to_string()
}
