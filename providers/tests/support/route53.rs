//! What both Route53 test files use: DKIM-sized values, an SDK config with test credentials, the
//! adapter around it, and an interceptor that counts API calls by operation.

use std::sync::{Arc, Mutex};

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
