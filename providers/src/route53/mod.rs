//! AWS Route53, through the AWS SDK and its standard credential chain (environment, profile, SSO,
//! `credential_process`, container or instance role).
//!
//! Route53 changes whole record sets, so the adapter changes the TXT set at a name only by
//! deleting the exact set it has just read (same TTL, same values) and creating the new set in
//! the same atomic batch: a value rotor does not own is always kept, and a set changed by someone
//! else in between makes the batch fail instead of being overwritten (never a blind UPSERT).
//! `apply` returns once Route53 reports every change `INSYNC`.
//!
//! The endpoint is the standard one unless `AWS_ENDPOINT_URL_ROUTE_53` (or `AWS_ENDPOINT_URL`,
//! or `endpoint_url` in the profile) says otherwise.

//! Its settings ([`Settings`]) are compiled in every build, so a config naming Route53 still
//! parses when the adapter is not, and says which feature is missing.

#[cfg(feature = "route53")]
mod adapter;
#[cfg(feature = "route53")]
mod plan;
pub mod settings;
#[cfg(feature = "route53")]
mod value;

#[cfg(feature = "route53")]
pub use adapter::{DEFAULT_REGION, DEFAULT_SYNC_TIMEOUT, Route53, Route53Config};
pub use settings::Settings;
