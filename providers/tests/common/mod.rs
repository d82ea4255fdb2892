//! The backends the conformance suite runs every adapter against, each behind [`Backend`].

#![allow(dead_code)]

pub mod bind;
pub mod cloudflare;
pub mod knot;
pub mod pdns;
pub mod route53;
#[path = "../support/route53.rs"]
pub mod route53_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rotor_providers::DnsProvider;
use rotor_providers::rfc2136::{Rfc2136, Rfc2136Config, TsigKey};

/// A DNS provider under test, with a way to look behind the adapter's back.
pub trait Backend: Send + Sync {
    /// The adapter under test, with good credentials.
    fn adapter(&self) -> &dyn DnsProvider;
    /// The same adapter with credentials the provider refuses (`None` where the emulator
    /// accepts any: moto; the adapter's scripted tests cover that case).
    fn bad_credentials(&self) -> Option<Box<dyn DnsProvider>>;
    /// The same adapter pointed at an address where nothing answers.
    fn unreachable(&self) -> Box<dyn DnsProvider>;
    /// Adds a TXT record the way someone else would (not through rotor's adapter).
    fn plant(&self, name: &str, value: &str);
    /// The TXT values at `name` as the provider stores them, each with its strings joined.
    fn stored(&self, name: &str) -> Vec<String>;
    /// Checks what the backend noticed about the adapter's requests (e.g. contract violations).
    fn verify(&self) {}
}

/// A scratch directory for this test binary.
pub fn scratch() -> tempfile::TempDir {
    rotor_testkit::scratch_in(env!("CARGO_TARGET_TMPDIR"))
}

/// Rotor's RFC 2136 adapter named `name`, for the server on 127.0.0.1:`port`, signing with the
/// TSIG key in `key`.
pub fn rfc2136_adapter(name: &str, port: u16, key: &Path) -> Rfc2136 {
    Rfc2136::new(Rfc2136Config {
        name: name.into(),
        server: format!("127.0.0.1:{port}").parse().unwrap(),
        tsig: Some(TsigKey::from_file(key).unwrap()),
        timeout: Duration::from_secs(3),
    })
}

/// A TSIG key file in `dir` named as the servers' key (`rotor-key`) but with another secret.
pub fn wrong_tsig_key(dir: &Path) -> PathBuf {
    let wrong = dir.join("wrong.key");
    rotor_testkit::write_private(
        &wrong,
        "key \"rotor-key\" { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"; };",
    );
    wrong
}
